/**
 * A minimal PNG encoder: 8-bit truecolour (RGB), no interlace, one IDAT.
 * Enough for screenshots, with nothing but node:zlib.
 */
import { crc32, deflateSync } from 'node:zlib';
import { VfioError } from '../../base/errors.js';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
/** PNG colour type 2: red, green, blue per pixel. */
const COLOR_RGB = 2;
/** PNG forbids dimensions above 2^31 - 1; a screen is far below. */
const MAX_DIMENSION = 0x7fffffff;

/**
 * Encodes `rgb` (width * height * 3 bytes, rows top to bottom, no padding)
 * as a PNG file.
 */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  for (const [what, v] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_DIMENSION) {
      throw new VfioError('EINVAL', `a PNG ${what} must be a positive integer, not ${v}`);
    }
  }
  const rowBytes = width * 3;
  if (rgb.length !== rowBytes * height) {
    throw new VfioError('EINVAL', `${width}x${height} RGB pixels take ${rowBytes * height} bytes, not ${rgb.length}`);
  }
  // Every scanline starts with its filter type; 0 (None) lets zlib do the work.
  const raw = new Uint8Array((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) {
    raw.set(rgb.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_RGB;
  // compression 0 (deflate), filter method 0, interlace 0: already zero
  return concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

/** length, type, data, CRC of type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
