/**
 * EDID 1.4 base blocks (VESA E-EDID): the monitor a virtual display device
 * pretends to drive. The guest's DRM driver reads it and picks the first
 * detailed timing as its preferred mode, so the EDID decides what
 * resolution the guest's console comes up in.
 */
import { VfioError } from '../../base/errors.js';

export const EDID_BLOCK_SIZE = 128;

/** What the monitor offers. */
export interface EdidOptions {
  /** Preferred (native) mode, the first detailed timing. */
  width: number;
  height: number;
  /** Refresh rate of the preferred mode in Hz; default 60. */
  refresh?: number;
  /** Largest mode listed besides the preferred one (established timings); default the preferred mode. */
  maxWidth?: number;
  maxHeight?: number;
  /** Three-letter PNP manufacturer id; default `UVF`. */
  manufacturer?: string;
  productCode?: number;
  serial?: number;
  /** Monitor name, up to 13 printable ASCII characters; default `uvfio`. */
  name?: string;
}

/** A detailed timing, as the guest will see it. */
export interface EdidTiming {
  width: number;
  height: number;
  /** Pixel clock in kHz (EDID's resolution is 10 kHz). */
  pixelClockKhz: number;
  hblank: number;
  vblank: number;
}

const HEADER = Uint8Array.of(0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00);
/** Assumed pixel density for the physical size fields. */
const DPI = 96;
/** Largest active size a detailed timing can encode (12 bits). */
const MAX_ACTIVE = 4095;

/** Established timings (bytes 35..36): [width, height, byte, bit] at 60 Hz. */
const ESTABLISHED: ReadonlyArray<readonly [number, number, number, number]> = [
  [640, 480, 35, 5],
  [800, 600, 35, 0],
  [1024, 768, 36, 3],
];

/** Builds a 128-byte EDID 1.4 base block with a correct checksum. */
export function buildEdid(options: EdidOptions): Uint8Array {
  const o = checkOptions(options);
  const e = new Uint8Array(EDID_BLOCK_SIZE);
  e.set(HEADER, 0);
  const m = o.manufacturer;
  const id = ((m.charCodeAt(0) - 64) << 10) | ((m.charCodeAt(1) - 64) << 5) | (m.charCodeAt(2) - 64);
  e[8] = id >> 8;
  e[9] = id & 0xff;
  le16(e, 10, o.productCode);
  le32(e, 12, o.serial);
  e[16] = 0; // week unknown
  e[17] = 2024 - 1990; // model year
  e[18] = 1; // version 1.4
  e[19] = 4;
  e[20] = 0xa0; // digital input, 8 bits per colour, interface not named
  e[21] = Math.round(mm(o.width) / 10);
  e[22] = Math.round(mm(o.height) / 10);
  e[23] = 220 - 100; // gamma 2.2
  e[24] = 0x06; // RGB 4:4:4, sRGB default colour space, preferred timing is native
  writeChromaticity(e);
  for (const [w, h, byte, bit] of ESTABLISHED) {
    if (w <= o.maxWidth && h <= o.maxHeight) e[byte]! |= 1 << bit;
  }
  e.fill(0x01, 38, 54); // no standard timings
  const timing = reducedBlanking(o.width, o.height, o.refresh);
  writeDetailedTiming(e, 54, timing);
  writeRangeLimits(e, 72, timing, o.refresh);
  writeText(e, 90, 0xfc, o.name);
  writeText(e, 108, 0x10, ''); // dummy descriptor
  e[126] = 0; // no extension blocks
  e[127] = (256 - sum(e.subarray(0, 127))) & 0xff;
  return e;
}

/** True when `block` starts with the EDID header and its bytes sum to 0 mod 256. */
export function isValidEdid(block: Uint8Array): boolean {
  if (block.length < EDID_BLOCK_SIZE) return false;
  for (let i = 0; i < HEADER.length; i++) if (block[i] !== HEADER[i]) return false;
  return sum(block.subarray(0, EDID_BLOCK_SIZE)) % 256 === 0;
}

/** The first detailed timing of a base block: the mode a guest prefers. */
export function preferredTiming(block: Uint8Array): EdidTiming {
  if (!isValidEdid(block)) throw new VfioError('EINVAL', 'not a valid EDID base block');
  const d = block.subarray(54, 72);
  const clock = d[0]! | (d[1]! << 8);
  if (clock === 0) throw new VfioError('EINVAL', 'the EDID has no detailed timing first');
  return {
    width: d[2]! | ((d[4]! >> 4) << 8),
    hblank: d[3]! | ((d[4]! & 0xf) << 8),
    height: d[5]! | ((d[7]! >> 4) << 8),
    vblank: d[6]! | ((d[7]! & 0xf) << 8),
    pixelClockKhz: clock * 10,
  };
}

// ---- internals ----------------------------------------------------------------

interface Timing extends EdidTiming {
  hfront: number;
  hsync: number;
  vfront: number;
  vsync: number;
}

function checkOptions(o: EdidOptions): Required<EdidOptions> {
  const r: Required<EdidOptions> = {
    width: o.width,
    height: o.height,
    refresh: o.refresh ?? 60,
    maxWidth: o.maxWidth ?? o.width,
    maxHeight: o.maxHeight ?? o.height,
    manufacturer: o.manufacturer ?? 'UVF',
    productCode: o.productCode ?? 0,
    serial: o.serial ?? 0,
    name: o.name ?? 'uvfio',
  };
  for (const key of ['width', 'height'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 64 || r[key] > MAX_ACTIVE) {
      throw new VfioError('EINVAL', `EDID ${key} must be an integer from 64 to ${MAX_ACTIVE}, not ${r[key]}`);
    }
  }
  if (!Number.isInteger(r.refresh) || r.refresh < 24 || r.refresh > 240) {
    throw new VfioError('EINVAL', `EDID refresh must be 24..240 Hz, not ${r.refresh}`);
  }
  if (!/^[A-Z]{3}$/.test(r.manufacturer)) {
    throw new VfioError('EINVAL', `EDID manufacturer must be three capital letters, not ${JSON.stringify(r.manufacturer)}`);
  }
  if (!Number.isInteger(r.productCode) || r.productCode < 0 || r.productCode > 0xffff) {
    throw new VfioError('EINVAL', `EDID product code must fit 16 bits, not ${r.productCode}`);
  }
  if (!Number.isInteger(r.serial) || r.serial < 0 || r.serial > 0xffffffff) {
    throw new VfioError('EINVAL', `EDID serial must fit 32 bits, not ${r.serial}`);
  }
  if (!/^[\x20-\x7e]{0,13}$/.test(r.name)) {
    throw new VfioError('EINVAL', `EDID monitor name must be up to 13 printable ASCII characters, not ${JSON.stringify(r.name)}`);
  }
  return r;
}

/**
 * CVT reduced-blanking timing (VESA CVT 1.1, RB v1): fixed 160-pixel
 * horizontal blank, vertical blank long enough for 460 µs.
 */
function reducedBlanking(width: number, height: number, refresh: number): Timing {
  const hblank = 160;
  const vfront = 3;
  const vsync = vsyncLines(width, height);
  const hPeriodUs = (1e6 / refresh - 460) / height;
  const vblank = Math.max(Math.floor(460 / hPeriodUs) + 1, vfront + vsync + 6);
  // CVT rounds the clock down to a multiple of 250 kHz.
  const pixelClockKhz = Math.floor(((width + hblank) * (height + vblank) * refresh) / 250_000) * 250;
  return { width, height, hblank, vblank, pixelClockKhz, hfront: 48, hsync: 32, vfront, vsync };
}

/** CVT's vsync width tells the aspect ratio. */
function vsyncLines(width: number, height: number): number {
  const is = (w: number, h: number) => width * h === height * w;
  if (is(4, 3)) return 4;
  if (is(16, 9)) return 5;
  if (is(16, 10)) return 6;
  if (is(5, 4) || is(15, 9)) return 7;
  return 10;
}

function writeDetailedTiming(e: Uint8Array, at: number, t: Timing): void {
  const hmm = Math.round(mm(t.width));
  const vmm = Math.round(mm(t.height));
  le16(e, at, t.pixelClockKhz / 10);
  e[at + 2] = t.width & 0xff;
  e[at + 3] = t.hblank & 0xff;
  e[at + 4] = ((t.width >> 8) << 4) | (t.hblank >> 8);
  e[at + 5] = t.height & 0xff;
  e[at + 6] = t.vblank & 0xff;
  e[at + 7] = ((t.height >> 8) << 4) | (t.vblank >> 8);
  e[at + 8] = t.hfront & 0xff;
  e[at + 9] = t.hsync & 0xff;
  e[at + 10] = ((t.vfront & 0xf) << 4) | (t.vsync & 0xf);
  e[at + 11] = ((t.hfront >> 8) << 6) | ((t.hsync >> 8) << 4) | ((t.vfront >> 4) << 2) | (t.vsync >> 4);
  e[at + 12] = hmm & 0xff;
  e[at + 13] = vmm & 0xff;
  e[at + 14] = ((hmm >> 8) << 4) | (vmm >> 8);
  // no borders; digital separate sync, hsync +, vsync - (as CVT-RB wants)
  e[at + 17] = 0x18 | 0x02;
}

/** Display range limits around the preferred mode, with no timing formula. */
function writeRangeLimits(e: Uint8Array, at: number, t: Timing, refresh: number): void {
  const hKhz = t.pixelClockKhz / (t.width + t.hblank);
  e[at + 3] = 0xfd;
  e[at + 5] = Math.min(50, refresh);
  e[at + 6] = Math.max(75, refresh);
  e[at + 7] = Math.min(30, Math.floor(hKhz));
  e[at + 8] = Math.min(255, Math.max(90, Math.ceil(hKhz)));
  // in 10 MHz; room for the established modes too (1024x768@60 is 65 MHz)
  e[at + 9] = Math.min(255, Math.max(7, Math.ceil(t.pixelClockKhz / 10_000)));
  e[at + 10] = 0x01; // range limits only
  e[at + 11] = 0x0a;
  e.fill(0x20, at + 12, at + 18);
}

/** A display descriptor holding text (`tag` 0xFC name, 0xFE string; 0x10 dummy when empty). */
function writeText(e: Uint8Array, at: number, tag: number, text: string): void {
  e[at + 3] = tag;
  if (tag === 0x10) return;
  for (let i = 0; i < 13; i++) {
    e[at + 5 + i] = i < text.length ? text.charCodeAt(i) : i === text.length ? 0x0a : 0x20;
  }
}

/** sRGB primaries and D65 white, in EDID's 10-bit fractions. */
function writeChromaticity(e: Uint8Array): void {
  const [rx, ry, gx, gy, bx, by, wx, wy] = [0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329].map((v) => Math.round(v * 1024)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  e[25] = ((rx & 3) << 6) | ((ry & 3) << 4) | ((gx & 3) << 2) | (gy & 3);
  e[26] = ((bx & 3) << 6) | ((by & 3) << 4) | ((wx & 3) << 2) | (wy & 3);
  [rx, ry, gx, gy, bx, by, wx, wy].forEach((v, i) => (e[27 + i] = v >> 2));
}

function mm(pixels: number): number {
  return (pixels * 25.4) / DPI;
}

function le16(e: Uint8Array, at: number, v: number): void {
  e[at] = v & 0xff;
  e[at + 1] = (v >> 8) & 0xff;
}

function le32(e: Uint8Array, at: number, v: number): void {
  le16(e, at, v & 0xffff);
  le16(e, at + 2, v >>> 16);
}

function sum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s += b;
  return s;
}
