/**
 * A strict reader of the PNGs uvfio writes (8-bit RGB, no interlace), for
 * tests: it checks the signature, every chunk's CRC, the IHDR fields and
 * each scanline's filter byte, and returns the pixels.
 */
import { crc32, inflateSync } from 'node:zlib';

export interface DecodedPng {
  width: number;
  height: number;
  /** width * height RGB triplets */
  rgb: Uint8Array;
  /** chunk types in file order */
  chunks: string[];
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function decodePng(file: Uint8Array): DecodedPng {
  SIGNATURE.forEach((b, i) => {
    if (file[i] !== b) throw new Error(`bad PNG signature at byte ${i}`);
  });
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const chunks: string[] = [];
  const idat: Uint8Array[] = [];
  let width = 0;
  let height = 0;
  let at = 8;
  while (at < file.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...file.subarray(at + 4, at + 8));
    const data = file.subarray(at + 8, at + 8 + length);
    const crc = view.getUint32(at + 8 + length);
    if (crc !== crc32(file.subarray(at + 4, at + 8 + length))) throw new Error(`bad CRC in ${type}`);
    chunks.push(type);
    if (type === 'IHDR') {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      if (data[8] !== 8 || data[9] !== 2 || data[10] !== 0 || data[11] !== 0 || data[12] !== 0) {
        throw new Error(`unexpected IHDR ${[...data.subarray(8)].join(',')}`);
      }
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    at += 12 + length;
  }
  if (chunks[0] !== 'IHDR' || chunks.at(-1) !== 'IEND') throw new Error(`bad chunk order ${chunks.join(',')}`);
  const raw = inflateSync(Buffer.concat(idat));
  const row = width * 3;
  if (raw.length !== (row + 1) * height) throw new Error(`inflated ${raw.length} bytes, expected ${(row + 1) * height}`);
  const rgb = new Uint8Array(row * height);
  for (let y = 0; y < height; y++) {
    if (raw[y * (row + 1)] !== 0) throw new Error(`line ${y} uses filter ${raw[y * (row + 1)]}`);
    rgb.set(raw.subarray(y * (row + 1) + 1, (y + 1) * (row + 1)), y * row);
  }
  return { width, height, rgb, chunks };
}
