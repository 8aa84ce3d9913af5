/**
 * Little-endian reads straight from a byte array, without a DataView per
 * message. Callers check bounds once per struct (`need`), so the reads
 * themselves never check; a read past the end would yield `undefined`
 * arithmetic (NaN/0), which is why every decoder calls `need` first.
 */
import { VfioError } from '../base/errors.js';

/** Throws EINVAL unless `b` holds at least `len` bytes from `off`. */
export function need(b: Uint8Array, off: number, len: number, what: string): void {
  if (off < 0 || len < 0 || off + len > b.length) {
    throw new VfioError('EINVAL', `${what}: needs ${len} bytes at offset ${off}, the message has ${Math.max(0, b.length - off)}`);
  }
}

export function u16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

export function u32(b: Uint8Array, off: number): number {
  // `>>> 0` keeps bit 31 from turning the value negative.
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/** A u64 as a bigint: for addresses, sizes and masks that may use all 64 bits. */
export function u64(b: Uint8Array, off: number): bigint {
  return BigInt(u32(b, off)) | (BigInt(u32(b, off + 4)) << 32n);
}

/**
 * A u64 as a number, or -1 when it exceeds Number.MAX_SAFE_INTEGER. The hot
 * path (region offsets) uses this to avoid a bigint per message; the caller
 * decides which errno an out-of-range value deserves.
 */
export function u64n(b: Uint8Array, off: number): number {
  const hi = u32(b, off + 4);
  // Below 2^32 the value stays an integer, not a double the engine would box.
  if (hi === 0) return u32(b, off);
  if (hi > 0x1fffff) return -1;
  return hi * 0x1_0000_0000 + u32(b, off);
}
