/** Display devices for the console tests: real mdpy and mbochs devices, programmed as a guest would. */
import { VfioCore } from '../../src/core/index.js';
import { DISPI_ENABLE, DISPI_INDEX, MbochsDevice } from '../../src/drivers/mbochs/index.js';
import { MdpyDevice } from '../../src/drivers/mdpy/index.js';
import type { ConsoleLog } from '../../src/console/console-log.js';

export const MB = 1024 * 1024;
let serial = 0;

/** A registered mbochs device with `memoryBytes` of video memory and no mode set. */
export function mbochs(core = new VfioCore(), memoryBytes = 4 * MB): MbochsDevice {
  const dev = new MbochsDevice({
    name: `c0c0c0c0-0000-4000-8000-${String(++serial).padStart(12, '0')}`,
    core,
    memoryBytes,
    maxWidth: 0,
    maxHeight: 0,
  });
  dev.register();
  return dev;
}

/** A registered mdpy device of `width` x `height`. */
export function mdpy(core = new VfioCore(), width = 320, height = 200): MdpyDevice {
  const dev = new MdpyDevice({ name: `c0c0c0c0-0000-4000-8000-${String(++serial).padStart(12, '0')}`, core, width, height });
  dev.register();
  return dev;
}

function dispi(dev: MbochsDevice, index: number, value: number): void {
  dev.dispi.writeMmio(index * 2, Uint8Array.of(value & 0xff, value >> 8));
}

/** What the bochs DRM driver programs for a `width` x `height` 32-bit mode, `yOffset` lines down. */
export function setMode(dev: MbochsDevice, width: number, height: number, yOffset = 0): void {
  dispi(dev, DISPI_INDEX.ENABLE, 0);
  dispi(dev, DISPI_INDEX.BPP, 32);
  dispi(dev, DISPI_INDEX.XRES, width);
  dispi(dev, DISPI_INDEX.YRES, height);
  dispi(dev, DISPI_INDEX.VIRT_WIDTH, width);
  dispi(dev, DISPI_INDEX.VIRT_HEIGHT, Math.floor(dev.memoryBytes / (width * 4)));
  dispi(dev, DISPI_INDEX.X_OFFSET, 0);
  dispi(dev, DISPI_INDEX.Y_OFFSET, yOffset);
  dispi(dev, DISPI_INDEX.ENABLE, DISPI_ENABLE.ENABLED | DISPI_ENABLE.LFB_ENABLED);
}

/** The guest turns its display off. */
export function disable(dev: MbochsDevice): void {
  dispi(dev, DISPI_INDEX.ENABLE, 0);
}

export type Rgb = readonly [number, number, number];

/** Writes XRGB8888 pixel (x, y) of a plane `stride` bytes a line, starting at `offset`. */
export function putPixel(fb: Uint8Array, stride: number, x: number, y: number, [r, g, b]: Rgb, offset = 0): void {
  const i = offset + y * stride + x * 4;
  fb[i] = b;
  fb[i + 1] = g;
  fb[i + 2] = r;
  fb[i + 3] = 0;
}

/** Fills a rectangle with one colour. */
export function fillRect(fb: Uint8Array, stride: number, x: number, y: number, w: number, h: number, c: Rgb, offset = 0): void {
  for (let j = y; j < y + h; j++) for (let i = x; i < x + w; i++) putPixel(fb, stride, i, j, c, offset);
}

/** A test picture that differs in every tile and nearly every pixel: colour from the position. */
export function pattern(x: number, y: number): Rgb {
  return [(x * 7 + y) & 0xff, (y * 5 + 3 * x) & 0xff, (x ^ y) & 0xff];
}

/** Paints `pattern` over a whole `width` x `height` plane. */
export function paintPattern(fb: Uint8Array, width: number, height: number, offset = 0, f = pattern): void {
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) putPixel(fb, width * 4, x, y, f(x, y), offset);
}

/** A log that keeps its lines, for assertions. */
export class MemoryLog implements ConsoleLog {
  readonly lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  debug(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'debug', msg, fields });
  }
  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'info', msg, fields });
  }
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'warn', msg, fields });
  }
  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'error', msg, fields });
  }
}

/** Number of live timers of this process (Node's own count of active resources). */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}
