/**
 * Pixels as a viewer wants them. RFB describes a true-colour format by bits
 * per pixel, byte order, and each channel's maximum and shift (RFC 6143
 * 7.4); the browser's canvas wants R, G, B, A bytes, which is one such
 * format with an opaque alpha byte on top. A frame's pixels are converted
 * from the plane's format (XRGB8888 or BGRX8888) rectangle by rectangle.
 */
import { VfioError } from '../base/errors.js';
import { channelOffsets } from '../drivers/display/plane.js';
import type { Frame } from './screen-feed.js';
import type { Rect } from './tiles.js';

/** RFB's PIXEL_FORMAT, true colour only. */
export interface PixelFormat {
  bitsPerPixel: 8 | 16 | 32;
  depth: number;
  bigEndian: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** What uvfio's VNC server offers first: the layout of XRGB8888 in memory. */
export const XRGB8888_FORMAT: Readonly<PixelFormat> = {
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
};

/** R, G, B, A bytes: what a canvas's ImageData holds (alpha is set by `opaque`). */
export const RGBA_FORMAT: Readonly<PixelFormat> = { ...XRGB8888_FORMAT, redShift: 0, blueShift: 16 };

/**
 * EINVAL unless `pf` is a true-colour format a viewer can be sent: 8, 16 or
 * 32 bits, each channel's maximum one less than a power of two and the
 * shifted channel inside the pixel.
 */
export function checkPixelFormat(pf: PixelFormat): void {
  const bpp: number = pf.bitsPerPixel; // from the wire: any number, whatever the type says
  if (bpp !== 8 && bpp !== 16 && bpp !== 32) {
    throw new VfioError('EINVAL', `${bpp} bits per pixel is not one of 8, 16, 32`);
  }
  for (const [name, max, shift] of [
    ['red', pf.redMax, pf.redShift],
    ['green', pf.greenMax, pf.greenShift],
    ['blue', pf.blueMax, pf.blueShift],
  ] as const) {
    if (!Number.isInteger(max) || max < 1 || (max & (max + 1)) !== 0 || max > 0xffff) {
      throw new VfioError('EINVAL', `${name} maximum ${max} is not 2^n - 1`);
    }
    if (!Number.isInteger(shift) || shift < 0 || shift + Math.log2(max + 1) > pf.bitsPerPixel) {
      throw new VfioError('EINVAL', `${name} shift ${shift} puts the channel outside a ${pf.bitsPerPixel}-bit pixel`);
    }
  }
}

/** Bytes one pixel takes in `pf`. */
export function bytesPerPixelOf(pf: PixelFormat): number {
  return pf.bitsPerPixel / 8;
}

/** A converter from a frame's pixels into one format, with its channel tables built once. */
export class PixelConverter {
  private readonly red: Uint32Array;
  private readonly green: Uint32Array;
  private readonly blue: Uint32Array;
  private readonly bpp: number;
  private readonly extra: number;
  private readonly native: boolean;
  /** For 32-bit formats of whole-byte channels: the byte of each channel in a pixel, and the filler byte's. */
  private readonly bytes: { r: number; g: number; b: number; pad: number; padValue: number } | undefined;

  /**
   * For `pf` (checked); `opaque` sets every bit that no channel uses, which
   * in RGBA_FORMAT is the alpha byte.
   */
  constructor(
    readonly format: PixelFormat,
    opaque = false,
  ) {
    checkPixelFormat(format);
    this.red = channelTable(format.redMax, format.redShift);
    this.green = channelTable(format.greenMax, format.greenShift);
    this.blue = channelTable(format.blueMax, format.blueShift);
    this.bpp = bytesPerPixelOf(format);
    const used = this.red[255]! | this.green[255]! | this.blue[255]!;
    const all = format.bitsPerPixel === 32 ? 0xffffffff : (1 << format.bitsPerPixel) - 1;
    this.extra = opaque ? (all & ~used) >>> 0 : 0;
    this.native = !opaque && sameLayout(format, XRGB8888_FORMAT);
    this.bytes = byteLayout(format, this.extra);
  }

  /** Bytes `r` takes in this format. */
  sizeOf(r: Rect): number {
    return r.w * r.h * this.bpp;
  }

  /** Writes the pixels of `r` (inside the frame) into `out` at `at`, rows packed; returns the end offset. */
  convert(frame: Frame, r: Rect, out: Buffer, at: number): number {
    const src = frame.pixels;
    const line = frame.width * 4;
    if (this.native && frame.format === 'XRGB8888') {
      // Same layout: copy the lines, and clear the X byte a guest may have set (its bits are unused).
      const start = at;
      for (let y = r.y; y < r.y + r.h; y++) at += src.copy(out, at, y * line + r.x * 4, y * line + (r.x + r.w) * 4);
      for (let i = start + 3; i < at; i += 4) out[i] = 0;
      return at;
    }
    const ch = channelOffsets(frame.format);
    const b = this.bytes;
    if (b !== undefined) {
      // Whole bytes: move each channel's byte, no arithmetic (a canvas's RGBA, most VNC viewers' formats).
      for (let y = r.y; y < r.y + r.h; y++) {
        let i = y * line + r.x * 4;
        for (let x = 0; x < r.w; x++, i += 4, at += 4) {
          out[at + b.r] = src[i + ch.r]!;
          out[at + b.g] = src[i + ch.g]!;
          out[at + b.b] = src[i + ch.b]!;
          out[at + b.pad] = b.padValue;
        }
      }
      return at;
    }
    const { red, green, blue, extra, bpp } = this;
    const big = this.format.bigEndian;
    for (let y = r.y; y < r.y + r.h; y++) {
      let i = y * line + r.x * 4;
      for (let x = 0; x < r.w; x++, i += 4) {
        const v = (red[src[i + ch.r]!]! | green[src[i + ch.g]!]! | blue[src[i + ch.b]!]! | extra) >>> 0;
        if (bpp === 4) {
          if (big) out.writeUInt32BE(v, at);
          else out.writeUInt32LE(v, at);
        } else if (bpp === 2) {
          if (big) out.writeUInt16BE(v, at);
          else out.writeUInt16LE(v, at);
        } else {
          out[at] = v;
        }
        at += bpp;
      }
    }
    return at;
  }
}

/** For each 8-bit level, the channel scaled to `max` and shifted into place. */
function channelTable(max: number, shift: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let v = 0; v < 256; v++) t[v] = (Math.round((v * max) / 255) * 2 ** shift) >>> 0;
  return t;
}

/**
 * Where each channel's byte goes in a 32-bit pixel of `pf`, when every
 * channel is a whole byte (maximum 255, shift a multiple of 8); undefined
 * otherwise. The fourth byte takes the unused bits of `extra`.
 */
function byteLayout(pf: PixelFormat, extra: number): { r: number; g: number; b: number; pad: number; padValue: number } | undefined {
  if (pf.bitsPerPixel !== 32) return undefined;
  const shifts = [pf.redShift, pf.greenShift, pf.blueShift];
  if (pf.redMax !== 255 || pf.greenMax !== 255 || pf.blueMax !== 255 || shifts.some((s) => s % 8 !== 0)) return undefined;
  const at = (shift: number) => (pf.bigEndian ? 3 - shift / 8 : shift / 8);
  const [r, g, b] = shifts.map(at) as [number, number, number];
  const pad = 6 - r - g - b;
  const padShift = pf.bigEndian ? (3 - pad) * 8 : pad * 8;
  return { r, g, b, pad, padValue: (extra >>> padShift) & 0xff };
}

function sameLayout(a: PixelFormat, b: PixelFormat): boolean {
  return (
    a.bitsPerPixel === b.bitsPerPixel &&
    a.bigEndian === b.bigEndian &&
    a.redMax === b.redMax &&
    a.greenMax === b.greenMax &&
    a.blueMax === b.blueMax &&
    a.redShift === b.redShift &&
    a.greenShift === b.greenShift &&
    a.blueShift === b.blueShift
  );
}
