/**
 * The 16-byte header in front of every vfio-user message:
 * msg_id u16, cmd u16, msg_size u32 (header included), flags u32, error_no u32.
 */
import { u16, u32 } from './buffer-reader.js';
import { put16, put32 } from './buffer-writer.js';
import { HeaderFlags, Size } from './protocol.js';

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
export function writeHeader(
  b: Uint8Array,
  off: number,
  msgId: number,
  cmd: number,
  size: number,
  flags: number,
  errorNo = 0,
): number {
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

/** True when a reply carries an error (its errorNo may still be 0). */
export function isErrorReply(flags: number): boolean {
  return (flags & HeaderFlags.ERROR) !== 0;
}
