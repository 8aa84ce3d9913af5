/**
 * The Bochs VBE "dispi" register file: how a guest sets a linear
 * framebuffer mode on QEMU's stdvga, and what the Linux `bochs` DRM driver
 * programs. Eleven 16-bit registers; in the MMIO BAR register `i` sits at
 * byte 0x500 + 2 * i and takes 16-bit accesses only.
 *
 * Pure state: the device maps BAR accesses here and asks for the plane.
 */
import { VfioError } from '../../base/errors.js';
import type { DisplayPlane } from '../display/plane.js';

export const DISPI_INDEX = {
  ID: 0x0,
  XRES: 0x1,
  YRES: 0x2,
  BPP: 0x3,
  ENABLE: 0x4,
  BANK: 0x5,
  VIRT_WIDTH: 0x6,
  VIRT_HEIGHT: 0x7,
  X_OFFSET: 0x8,
  Y_OFFSET: 0x9,
  VIDEO_MEMORY_64K: 0xa,
} as const;

const DISPI_REGISTER_COUNT = 11;

/** Interface versions; a guest checks `(id & 0xfff0) === ID0`. */
export const DISPI_ID0 = 0xb0c0;
export const DISPI_ID5 = 0xb0c5;

/** Bits of the ENABLE register. */
export const DISPI_ENABLE = {
  ENABLED: 0x01,
  /** While set, XRES, YRES and BPP read back the largest values supported. */
  GETCAPS: 0x02,
  DAC_8BIT: 0x20,
  LFB_ENABLED: 0x40,
  NOCLEARMEM: 0x80,
} as const;

/** Where the registers sit in the MMIO BAR, and how many bytes they span. */
export const DISPI_MMIO_OFFSET = 0x500;
export const DISPI_MMIO_SIZE = 2 * DISPI_REGISTER_COUNT;

/** Limits of the emulated adapter. */
export interface DispiLimits {
  /** Video memory in bytes: a multiple of 64 KiB (VIDEO_MEMORY_64K reports it). */
  memoryBytes: number;
  /** What GETCAPS reports; 0 for the interface maximum. */
  maxWidth?: number;
  maxHeight?: number;
}

/** VBE_DISPI_MAX_XRES / MAX_YRES of QEMU's stdvga. */
const INTERFACE_MAX_X = 16000;
const INTERFACE_MAX_Y = 12000;
const MAX_BPP = 32;
/** Smaller modes are refused as a plane, as the kernel's mbochs does. */
const MIN_PLANE = 64;

/** The eleven dispi registers of one adapter, and the plane they describe. */
export class DispiRegisters {
  readonly memoryBytes: number;
  readonly maxWidth: number;
  readonly maxHeight: number;
  readonly #regs = new Uint16Array(DISPI_REGISTER_COUNT);

  constructor(limits: DispiLimits) {
    const mem = limits.memoryBytes;
    if (!Number.isSafeInteger(mem) || mem <= 0 || mem % 0x10000 !== 0 || mem / 0x10000 > 0xffff) {
      throw new VfioError('EINVAL', `dispi video memory must be a positive multiple of 64 KiB below 4 GiB, not ${mem}`);
    }
    this.memoryBytes = mem;
    this.maxWidth = Math.min(limits.maxWidth || INTERFACE_MAX_X, INTERFACE_MAX_X);
    this.maxHeight = Math.min(limits.maxHeight || INTERFACE_MAX_Y, INTERFACE_MAX_Y);
    this.reset();
  }

  /** Power-on values: ID5, the memory size, everything else 0 (display off). */
  reset(): void {
    this.#regs.fill(0);
    this.#regs[DISPI_INDEX.ID] = DISPI_ID5;
    this.#regs[DISPI_INDEX.VIDEO_MEMORY_64K] = this.memoryBytes / 0x10000;
  }

  /** The eleven registers as stored, for migration. */
  saveState(): Uint16Array {
    return this.#regs.slice();
  }

  /**
   * Takes registers saveState() gave, after checking them: eleven of them,
   * an interface version the guest could have written, this adapter's
   * video memory size (EBADMSG otherwise, EINVAL for another size).
   */
  restoreState(regs: Uint16Array): void {
    if (regs.length !== DISPI_REGISTER_COUNT) throw new VfioError('EBADMSG', `dispi state has ${regs.length} registers, not ${DISPI_REGISTER_COUNT}`);
    const id = regs[DISPI_INDEX.ID]!;
    if (id < DISPI_ID0 || id > DISPI_ID5) throw new VfioError('EBADMSG', `dispi state has interface version 0x${id.toString(16)}`);
    if (regs[DISPI_INDEX.VIDEO_MEMORY_64K] !== this.memoryBytes / 0x10000) {
      throw new VfioError(
        'EINVAL',
        `dispi state is of an adapter with ${regs[DISPI_INDEX.VIDEO_MEMORY_64K]! * 64} KiB of video memory, not ${this.memoryBytes / 1024}`,
      );
    }
    this.#regs.set(regs);
  }

  /** Register `index` as the guest reads it; 0 beyond the file. */
  read(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= DISPI_REGISTER_COUNT) return 0;
    if (this.#regs[DISPI_INDEX.ENABLE]! & DISPI_ENABLE.GETCAPS) {
      if (index === DISPI_INDEX.XRES) return this.maxWidth;
      if (index === DISPI_INDEX.YRES) return this.maxHeight;
      if (index === DISPI_INDEX.BPP) return MAX_BPP;
    }
    return this.#regs[index]!;
  }

  /**
   * A guest write of register `index`. ID takes only a known interface
   * version, VIDEO_MEMORY_64K is read-only, the rest store what is written
   * (a mode is judged when the plane is queried, as hardware scans out
   * whatever it was told).
   */
  write(index: number, value: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= DISPI_REGISTER_COUNT) return;
    const v = value & 0xffff;
    switch (index) {
      case DISPI_INDEX.ID:
        if (v >= DISPI_ID0 && v <= DISPI_ID5) this.#regs[index] = v;
        return;
      case DISPI_INDEX.VIDEO_MEMORY_64K:
        return;
      default:
        this.#regs[index] = v;
    }
  }

  /**
   * An MMIO read of `dest.length` bytes at `offset` from the first register
   * (BAR offset 0x500). Only aligned 16-bit accesses reach a register;
   * others read as zeros.
   */
  readMmio(offset: number, dest: Uint8Array): void {
    if (dest.length !== 2 || offset % 2 !== 0) {
      dest.fill(0);
      return;
    }
    const v = this.read(offset / 2);
    dest[0] = v & 0xff;
    dest[1] = v >> 8;
  }

  /** An MMIO write at `offset` from the first register; only aligned 16-bit writes count. */
  writeMmio(offset: number, src: Uint8Array): void {
    if (src.length !== 2 || offset % 2 !== 0) return;
    this.write(offset / 2, src[0]! | (src[1]! << 8));
  }

  /** True while the guest has a mode enabled. */
  get enabled(): boolean {
    return (this.#regs[DISPI_INDEX.ENABLE]! & DISPI_ENABLE.ENABLED) !== 0;
  }

  /**
   * The plane the registers describe: ENOENT while no mode is enabled,
   * EINVAL for one that cannot be shown (not 32 bpp, below 64x64, or
   * running past video memory).
   */
  plane(): DisplayPlane {
    const r = this.#regs;
    if (!this.enabled) {
      throw new VfioError('ENOENT', 'the guest has not programmed a display mode yet (dispi ENABLE is off)');
    }
    const bpp = r[DISPI_INDEX.BPP]!;
    if (bpp !== 32) throw new VfioError('EINVAL', `the guest programmed ${bpp} bits per pixel; only 32 (XRGB8888) can be shown`);
    const width = r[DISPI_INDEX.XRES]!;
    const height = r[DISPI_INDEX.YRES]!;
    if (width < MIN_PLANE || height < MIN_PLANE) {
      throw new VfioError('EINVAL', `the guest programmed ${width}x${height}, below the ${MIN_PLANE}x${MIN_PLANE} a plane needs`);
    }
    const stride = Math.max(r[DISPI_INDEX.VIRT_WIDTH]!, width) * 4;
    const offset = r[DISPI_INDEX.X_OFFSET]! * 4 + r[DISPI_INDEX.Y_OFFSET]! * stride;
    if (offset + stride * height > this.memoryBytes) {
      throw new VfioError('EINVAL', `the guest's ${width}x${height} mode at offset ${offset} runs past ${this.memoryBytes} bytes of video memory`);
    }
    return { format: 'XRGB8888', width, height, stride, offset };
  }
}
