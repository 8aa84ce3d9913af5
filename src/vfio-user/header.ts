/**
 * The 16-byte header in front of every vfio-user message:
 * msg_id u16, cmd u16, msg_size u32 (header included), flags u32, error_no u32.
 */
import { VfioError } from '../base/errors.js';
import { u16, u32 } from './buffer-reader.js';
import { put16, put32 } from './buffer-writer.js';
import { Command, commandName, HeaderFlags, Size } from './protocol.js';

/** Bytes of the header that starts every message (msg_id, command, msg_size, flags, error). */
export const HEADER_SIZE = Size.HEADER;

/** A decoded header. `size` counts the header itself. */
export interface MessageHeader {
  msgId: number;
  cmd: number;
  size: number;
  flags: number;
  errorNo: number;
}

/** Reads a header at `off`; the caller guarantees 16 bytes are there. */
export function readHeader(b: Uint8Array, off = 0): MessageHeader {
  return {
    msgId: u16(b, off),
    cmd: u16(b, off + 2),
    size: u32(b, off + 4),
    flags: u32(b, off + 8),
    errorNo: u32(b, off + 12),
  };
}

/** Writes a header at `off` (16 bytes); returns the offset just past it. */
export function writeHeader(b: Uint8Array, off: number, msgId: number, cmd: number, size: number, flags: number, errorNo = 0): number {
  put16(b, off, msgId);
  put16(b, off + 2, cmd);
  put32(b, off + 4, size);
  put32(b, off + 8, flags);
  put32(b, off + 12, errorNo);
  return off + HEADER_SIZE;
}

/** True when `flags` mark a reply (type 1). */
export function isReply(flags: number): boolean {
  return (flags & HeaderFlags.TYPE_MASK) === HeaderFlags.TYPE_REPLY;
}

/** True when `flags` mark a command (type 0). */
export function isCommand(flags: number): boolean {
  return (flags & HeaderFlags.TYPE_MASK) === HeaderFlags.TYPE_COMMAND;
}

/** True when a command asks for no reply. */
export function wantsNoReply(flags: number): boolean {
  return (flags & HeaderFlags.NO_REPLY) !== 0;
}

/** True when `flags` carry ERROR: a failed reply (its errorNo may still be 0); a command may not. */
export function hasErrorFlag(flags: number): boolean {
  return (flags & HeaderFlags.ERROR) !== 0;
}

/** Who serves a command: a server (every command but DMA_READ/DMA_WRITE), or a client (those two). */
export type Receiver = 'server' | 'client';

/**
 * The rule for a message a receiver is to serve as a command, checked in
 * this one place: a command (type 0), without the ERROR flag, of the
 * receiver's direction. EINVAL otherwise; a command id nobody knows is
 * left to the receiver (ENOSYS).
 */
export function checkCommand(msgId: number, cmd: number, flags: number, receiver: Receiver): void {
  const type = flags & HeaderFlags.TYPE_MASK;
  if (type !== HeaderFlags.TYPE_COMMAND) {
    throw new VfioError('EINVAL', `${commandName(cmd)} message ${msgId}: type ${type} where a command was expected`);
  }
  if (hasErrorFlag(flags)) throw new VfioError('EINVAL', `${commandName(cmd)} message ${msgId}: a command may not carry the ERROR flag`);
  const toClient = cmd === Command.DMA_READ || cmd === Command.DMA_WRITE;
  if (cmd >= Command.VERSION && cmd <= Command.MIG_DATA_WRITE && toClient !== (receiver === 'client')) {
    throw new VfioError('EINVAL', `${commandName(cmd)} goes to a ${toClient ? 'client' : 'server'}, not a ${receiver}`);
  }
}
