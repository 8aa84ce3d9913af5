/**
 * The errors decoders throw for malformed messages, worded once: the
 * command's name (and "reply" for a reply) and a sentence.
 */
import { VfioError } from '../base/errors.js';
import { commandName } from './protocol.js';

/** EINVAL naming the command (or its reply). */
export function malformed(cmd: number, sentence: string, reply = false): VfioError {
  return new VfioError('EINVAL', `${commandName(cmd)}${reply ? ' reply' : ''}: ${sentence}`);
}

/** EINVAL when a message that has no use for fds carried some (so none is kept by accident). */
export function refuseFds(cmd: number, fds: readonly number[], reply = false): void {
  if (fds.length !== 0) throw malformed(cmd, `carries ${fds.length} fds it has no use for`, reply);
}

/** EINVAL unless the body is exactly `len` bytes. */
export function exactLength(cmd: number, body: Uint8Array, len: number, reply = false): void {
  if (body.length !== len) throw malformed(cmd, `body is ${body.length} bytes, expected ${len}`, reply);
}

/**
 * EINVAL unless `body` holds `len` bytes at `off`. The sentence is built only
 * on failure: this runs for every message on the hot path.
 */
export function requireBytes(cmd: number, body: Uint8Array, off: number, len: number, reply = false, part = ''): void {
  if (off + len > body.length) {
    const have = Math.max(0, body.length - off);
    throw malformed(cmd, `${part}needs ${len} bytes at offset ${off}, the message has ${have}`, reply);
  }
}
