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
  if (pf.bitsPerPixel !== 8 && pf.bitsPerPixel !== 16 && pf.bitsPerPixel !== 32) {
    throw new VfioError('EINVAL', `${pf.bitsPerPixel} bits per pixel is not one of 8, 16, 32`);
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
