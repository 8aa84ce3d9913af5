/**
 * Little-endian writes straight into a byte array (the mirror of
 * buffer-reader.ts). Callers size the buffer first; these never grow it.
 */

// A Uint8Array keeps the low 8 bits of what is stored in it: no masks.
// Every reply header goes through these; fewer operations let the engine
// inline them where they are called.

export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v;
  b[off + 1] = v >>> 8;
}

export function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v;
  b[off + 1] = v >>> 8;
  b[off + 2] = v >>> 16;
  b[off + 3] = v >>> 24;
}

/** Writes a u64 given as a bigint (truncated to 64 bits) or a non-negative safe number. */
export function put64(b: Uint8Array, off: number, v: bigint | number): void {
  if (typeof v === 'number') {
    // Below 2^32 (a region offset, nearly always) no division: a double's
    // modulo is a call out of the compiled code.
    const low = v <= 0xffff_ffff;
    put32(b, off, low ? v : v % 0x1_0000_0000);
    put32(b, off + 4, low ? 0 : Math.floor(v / 0x1_0000_0000));
    return;
  }
  const x = BigInt.asUintN(64, v);
  put32(b, off, Number(x & 0xffff_ffffn));
  put32(b, off + 4, Number(x >> 32n));
}
