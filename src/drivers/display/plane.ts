/**
 * A graphics plane: what a display device scans out of its framebuffer, as
 * the guest programmed it (the kernel's vfio_device_gfx_plane_info, less the
 * dma-buf plumbing), and its conversion to RGB pixels.
 */
import { VfioError } from '../../base/errors.js';
import { encodePng } from './png.js';

/** Pixel formats a plane can have, named as DRM names them. */
export type PixelFormat = 'XRGB8888' | 'BGRX8888';

/** DRM fourcc codes (include/uapi/drm/drm_fourcc.h) of the pixel formats. */
export const DRM_FORMAT: Readonly<Record<PixelFormat, number>> = {
  XRGB8888: fourcc('X', 'R', '2', '4'),
  BGRX8888: fourcc('B', 'X', '2', '4'),
};

/** Byte of each channel inside a little-endian 32-bit pixel. */
const CHANNELS: Readonly<Record<PixelFormat, { r: number; g: number; b: number }>> = {
  XRGB8888: { r: 2, g: 1, b: 0 },
  BGRX8888: { r: 1, g: 2, b: 3 },
};

export interface DisplayPlane {
  format: PixelFormat;
  /** Visible pixels per line. */
  width: number;
  /** Visible lines. */
  height: number;
  /** Bytes from the start of one line to the next (at least width * 4). */
  stride: number;
  /** Byte offset of the first visible pixel in the framebuffer. */
  offset: number;
}

/** Byte of each colour channel inside one pixel of `format` (what a viewer converts from). */
export function channelOffsets(format: PixelFormat): { readonly r: number; readonly g: number; readonly b: number } {
  return CHANNELS[format];
}

/** Bytes per pixel of `format`. */
export function bytesPerPixel(format: PixelFormat): number {
  void format;
  return 4;
}

/** The number DRM gives a format (`drm_format` of a plane query). */
export function drmFormatOf(format: PixelFormat): number {
  return DRM_FORMAT[format];
}

/**
 * Throws EINVAL unless `plane` is well formed and lies inside a framebuffer
 * of `fbSize` bytes.
 */
export function checkPlane(plane: DisplayPlane, fbSize: number): void {
  if (!(plane.format in CHANNELS)) throw new VfioError('EINVAL', `unknown pixel format ${String(plane.format)}`);
  for (const key of ['width', 'height', 'stride', 'offset'] as const) {
    const v = plane[key];
    if (!Number.isSafeInteger(v) || v < 0 || ((key === 'width' || key === 'height') && v === 0)) {
      throw new VfioError('EINVAL', `plane ${key} ${v} is not valid`);
    }
  }
  const lineBytes = plane.width * bytesPerPixel(plane.format);
  if (plane.stride < lineBytes) {
    throw new VfioError('EINVAL', `plane stride ${plane.stride} is shorter than a ${plane.width}-pixel line`);
  }
  const end = plane.offset + plane.stride * (plane.height - 1) + lineBytes;
  if (end > fbSize) {
    throw new VfioError('EINVAL', `a ${describePlane(plane)} plane ends at byte ${end}, past the ${fbSize}-byte framebuffer`);
  }
}

/** The visible pixels of `plane` in `fb`, as width * height RGB triplets. */
export function planeToRgb(fb: Uint8Array, plane: DisplayPlane): Uint8Array {
  checkPlane(plane, fb.length);
  const { r, g, b } = CHANNELS[plane.format];
  const bpp = bytesPerPixel(plane.format);
  const out = new Uint8Array(plane.width * plane.height * 3);
  let o = 0;
  for (let y = 0; y < plane.height; y++) {
    let i = plane.offset + y * plane.stride;
    for (let x = 0; x < plane.width; x++, i += bpp) {
      out[o++] = fb[i + r]!;
      out[o++] = fb[i + g]!;
      out[o++] = fb[i + b]!;
    }
  }
  return out;
}

/** The visible pixels of `plane` in `fb` as a PNG file. */
export function renderToPng(fb: Uint8Array, plane: DisplayPlane): Uint8Array {
  return encodePng(planeToRgb(fb, plane), plane.width, plane.height);
}

/** `1024x768 XRGB8888, stride 4096, offset 0` */
function describePlane(plane: DisplayPlane): string {
  return `${plane.width}x${plane.height} ${plane.format}, stride ${plane.stride}, offset ${plane.offset}`;
}

function fourcc(a: string, b: string, c: string, d: string): number {
  return (a.charCodeAt(0) | (b.charCodeAt(0) << 8) | (c.charCodeAt(0) << 16) | (d.charCodeAt(0) << 24)) >>> 0;
}
