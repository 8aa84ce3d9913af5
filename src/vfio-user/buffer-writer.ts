/**
 * Little-endian writes straight into a byte array (the mirror of
 * buffer-reader.ts). Callers size the buffer first; these never grow it.
 */

export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

export function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** Writes a u64 given as a bigint (truncated to 64 bits) or a non-negative safe number. */
export function put64(b: Uint8Array, off: number, v: bigint | number): void {
  if (typeof v === 'number') {
    put32(b, off, v % 0x1_0000_0000);
    put32(b, off + 4, Math.floor(v / 0x1_0000_0000));
    return;
  }
  const x = BigInt.asUintN(64, v);
  put32(b, off, Number(x & 0xffff_ffffn));
  put32(b, off + 4, Number(x >> 32n));
}
