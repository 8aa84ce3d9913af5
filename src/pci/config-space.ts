/**
 * PCI configuration space of one emulated function: the bytes, which bits
 * software may write (RW), which bits it clears by writing 1 (RW1C), and the
 * standard type-0 header.
 *
 * Every byte is independent, as on the bus: an access of any width at any
 * offset applies the masks byte by byte, which is exactly what hardware does
 * with the byte enables of a dword access (and what a CPU does when it splits
 * an unaligned access). Only accesses that run past the end are refused.
 */

import { VfioError } from '../base/errors.js';

/** Size of conventional (PCI) and extended (PCI Express) configuration space. */
const CONFIG_SPACE_SIZE = 256;
const EXTENDED_CONFIG_SPACE_SIZE = 4096;

/** Offsets of the type-0 header registers. */
export const PCI_HEADER = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CLASS_DEVICE: 0x0a,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BASE_ADDRESS_0: 0x10,
  CARDBUS_CIS: 0x28,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  MIN_GNT: 0x3e,
  MAX_LAT: 0x3f,
} as const;

/** Where the first capability may go: right after the type-0 header. */
export const PCI_HEADER_SIZE = 0x40;

/** Command register bits. */
export const PCI_COMMAND = {
  IO: 0x0001,
  MEMORY: 0x0002,
  MASTER: 0x0004,
  PARITY: 0x0040,
  SERR: 0x0100,
  INTX_DISABLE: 0x0400,
} as const;

/** Status register bits. */
export const PCI_STATUS = {
  INTERRUPT: 0x0008,
  CAP_LIST: 0x0010,
  MASTER_DATA_PARITY: 0x0100,
  SIG_TARGET_ABORT: 0x0800,
  REC_TARGET_ABORT: 0x1000,
  REC_MASTER_ABORT: 0x2000,
  SIG_SYSTEM_ERROR: 0x4000,
  DETECTED_PARITY: 0x8000,
} as const;

/** The error bits of the status register, which software clears by writing 1. */
export const PCI_STATUS_ERROR_BITS =
  PCI_STATUS.MASTER_DATA_PARITY |
  PCI_STATUS.SIG_TARGET_ABORT |
  PCI_STATUS.REC_TARGET_ABORT |
  PCI_STATUS.REC_MASTER_ABORT |
  PCI_STATUS.SIG_SYSTEM_ERROR |
  PCI_STATUS.DETECTED_PARITY;

/** Called after a write from software touched `[offset, offset + size)`. */
export type ConfigWriteListener = (offset: number, size: number) => void;

interface ListenerEntry {
  start: number;
  end: number;
  fn: ConfigWriteListener;
}

/** Access widths of a single register access. */
export type AccessSize = 1 | 2 | 4;

/**
 * Raw configuration space with per-bit write semantics.
 *
 * Two views: software (`read`/`write`/`readBytes`/`writeBytes`, with masks,
 * bounds checks and listeners) and the device itself (`get*`/`set*`/
 * `define`, which bypass the masks, as the function's own logic does).
 */
export class ConfigSpace {
  readonly size: number;
  readonly #value: Uint8Array;
  readonly #rw: Uint8Array;
  readonly #rw1c: Uint8Array;
  readonly #view: DataView;
  readonly #listeners: ListenerEntry[] = [];

  constructor(size: number = CONFIG_SPACE_SIZE) {
    if (size !== CONFIG_SPACE_SIZE && size !== EXTENDED_CONFIG_SPACE_SIZE) {
      throw new VfioError('EINVAL', `config space must be 256 or 4096 bytes, not ${size}`);
    }
    this.size = size;
    this.#value = new Uint8Array(size);
    this.#rw = new Uint8Array(size);
    this.#rw1c = new Uint8Array(size);
    this.#view = new DataView(this.#value.buffer);
  }

  /** A standard type-0 header, everything else zero and read-only. */
  static type0(options: Type0HeaderOptions): ConfigSpace {
    const cs = new ConfigSpace(options.extended ? EXTENDED_CONFIG_SPACE_SIZE : CONFIG_SPACE_SIZE);
    initType0Header(cs, options);
    return cs;
  }

  // ---- software view ----------------------------------------------------

  /** Reads a 1, 2 or 4-byte little-endian register at any offset. */
  read(offset: number, size: AccessSize): number {
    this.#checkWidth(size);
    this.#checkRange(offset, size);
    return this.#getLE(offset, size);
  }

  /** Writes a 1, 2 or 4-byte little-endian value at any offset, through the masks. */
  write(offset: number, size: AccessSize, value: number): void {
    this.#checkWidth(size);
    this.#checkRange(offset, size);
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
    this.#notify(offset, size);
  }

  /** Copies `out.length` bytes starting at `offset` (a region read of any length). */
  readBytes(offset: number, out: Uint8Array): void {
    this.#checkRange(offset, out.length);
    out.set(this.#value.subarray(offset, offset + out.length));
  }

  /** Writes `data` starting at `offset` through the masks (a region write of any length). */
  writeBytes(offset: number, data: Uint8Array): void {
    this.#checkRange(offset, data.length);
    for (let i = 0; i < data.length; i++) this.#writeByte(offset + i, data[i]!);
    this.#notify(offset, data.length);
  }

  /**
   * Calls `fn` after every software write that touches `[start, start + length)`;
   * capabilities use this to act on enables and masks. Returns the remover.
   */
  onWrite(start: number, length: number, fn: ConfigWriteListener): () => void {
    this.#checkRange(start, length);
    const entry: ListenerEntry = { start, end: start + length, fn };
    this.#listeners.push(entry);
    return () => {
      const i = this.#listeners.indexOf(entry);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  // ---- device view ------------------------------------------------------

  getU8(offset: number): number {
    this.#checkRange(offset, 1);
    return this.#value[offset]!;
  }
  getU16(offset: number): number {
    this.#checkRange(offset, 2);
    return this.#view.getUint16(offset, true);
  }
  getU32(offset: number): number {
    this.#checkRange(offset, 4);
    return this.#view.getUint32(offset, true);
  }
  setU8(offset: number, value: number): void {
    this.#checkRange(offset, 1);
    this.#value[offset] = value;
  }
  setU16(offset: number, value: number): void {
    this.#checkRange(offset, 2);
    this.#view.setUint16(offset, value, true);
  }
  setU32(offset: number, value: number): void {
    this.#checkRange(offset, 4);
    this.#view.setUint32(offset, value >>> 0, true);
  }

  /** Sets or clears `bits` of a register of `size` bytes, bypassing the masks. */
  setBits(offset: number, size: AccessSize, bits: number, on: boolean): void {
    const old = this.#getChecked(offset, size);
    this.#setLE(offset, size, on ? old | bits : old & ~bits);
  }

  /**
   * Declares a register: its reset value, the bits software may write, and
   * the bits software clears by writing 1. Bits in neither mask are read-only.
   */
  define(offset: number, size: AccessSize, value: number, masks: RegisterMasks = {}): void {
    this.#checkRange(offset, size);
    const rw = masks.writable ?? 0;
    const rw1c = masks.clearable ?? 0;
    if ((rw & rw1c) !== 0) {
      throw new VfioError('EINVAL', `config register 0x${offset.toString(16)} has bits both writable and write-1-to-clear`);
    }
    for (let i = 0; i < size; i++) {
      const shift = 8 * i;
      this.#value[offset + i] = (value >>> shift) & 0xff;
      this.#rw[offset + i] = (rw >>> shift) & 0xff;
      this.#rw1c[offset + i] = (rw1c >>> shift) & 0xff;
    }
  }

  /** A copy of every register's value, to put back at a function reset. */
  saveState(): Uint8Array {
    return this.#value.slice();
  }

  /**
   * Puts back values taken by saveState(). It bypasses the masks and tells
   * no listener: a reset is the function's own doing, not a software write.
   */
  restoreState(saved: Uint8Array): void {
    if (saved.length !== this.size) {
      throw new VfioError('EINVAL', `saved config state has ${saved.length} bytes, the space has ${this.size}`);
    }
    this.#value.set(saved);
  }

  /**
   * Checks that `saved` (from saveState(), maybe another process's) could
   * have come from this function: every bit software cannot write is as it
   * is here, except the bits the function itself drives, listed in
   * `deviceDriven` as [offset, size, mask]. EINVAL otherwise, naming the
   * first offset that differs. Nothing changes: restoreState() applies it.
   */
  checkState(saved: Uint8Array, deviceDriven: ReadonlyArray<readonly [number, AccessSize, number]> = []): void {
    if (saved.length !== this.size) {
      throw new VfioError('EINVAL', `saved config state has ${saved.length} bytes, the space has ${this.size}`);
    }
    const free = new Uint8Array(this.size);
    for (const [offset, size, mask] of deviceDriven) {
      for (let i = 0; i < size; i++) free[offset + i]! |= (mask >>> (8 * i)) & 0xff;
    }
    for (let at = 0; at < this.size; at++) {
      const fixed = ~(this.#rw[at]! | this.#rw1c[at]! | free[at]!) & 0xff;
      if (((saved[at]! ^ this.#value[at]!) & fixed) !== 0) {
        throw new VfioError('EINVAL', `saved config state differs at 0x${at.toString(16)} in bits software cannot write: another function's`);
      }
    }
  }

  /** The RW mask of a register (tests and dumps). */
  writableMask(offset: number, size: AccessSize): number {
    this.#checkRange(offset, size);
    return leOf(this.#rw, offset, size);
  }

  /** The RW1C mask of a register (tests and dumps). */
  clearableMask(offset: number, size: AccessSize): number {
    this.#checkRange(offset, size);
    return leOf(this.#rw1c, offset, size);
  }

  // ---- internals ----------------------------------------------------------

  #writeByte(at: number, byte: number): void {
    const rw = this.#rw[at]!;
    const rw1c = this.#rw1c[at]!;
    const old = this.#value[at]!;
    this.#value[at] = ((old & ~rw) | (byte & rw)) & ~(byte & rw1c);
  }

  #notify(offset: number, size: number): void {
    // A zero-length access (the wire allows one) inside a listener's range
    // would pass the overlap test below without touching anything.
    if (size === 0) return;
    const end = offset + size;
    // Copy first: a listener may add or remove listeners.
    for (const l of this.#listeners.slice()) {
      if (offset < l.end && end > l.start) l.fn(offset, size);
    }
  }

  #getChecked(offset: number, size: AccessSize): number {
    this.#checkRange(offset, size);
    return this.#getLE(offset, size);
  }

  #getLE(offset: number, size: number): number {
    return leOf(this.#value, offset, size);
  }

  #setLE(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.#value[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  #checkWidth(size: number): void {
    if (size !== 1 && size !== 2 && size !== 4) {
      throw new VfioError('EINVAL', `config access width must be 1, 2 or 4 bytes, not ${size}`);
    }
  }

  #checkRange(offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new VfioError('EINVAL', `config access of ${length} bytes at 0x${offset.toString(16)} runs outside the ${this.size}-byte config space`);
    }
  }
}

/** Masks of a register declared with `ConfigSpace.define`. */
export interface RegisterMasks {
  /** Bits software may write (RW). */
  writable?: number;
  /** Bits software clears by writing 1 (RW1C). */
  clearable?: number;
}

/** Identity of a function, as the type-0 header carries it. */
export interface Type0HeaderOptions {
  vendorId: number;
  deviceId: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  revision?: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  /** 0 none, 1..4 INTA#..INTD#. */
  interruptPin?: number;
  /** Sets bit 7 of the header type (the device has more functions). */
  multiFunction?: boolean;
  /** 4 KiB config space (PCI Express) instead of 256 bytes. */
  extended?: boolean;
}

/**
 * Lays out the type-0 header in `cs`. Command bits for I/O and memory decode
 * start read-only; `installBars` makes them writable when the function has
 * such BARs, as hardware hardwires to 0 the decoders it lacks.
 */
function initType0Header(cs: ConfigSpace, o: Type0HeaderOptions): void {
  const pin = o.interruptPin ?? 0;
  if (!Number.isInteger(pin) || pin < 0 || pin > 4) {
    throw new VfioError('EINVAL', `interrupt pin must be 0 (none) or 1..4 (INTA#..INTD#), not ${pin}`);
  }
  checkUint(o.vendorId, 0xffff, 'vendor ID');
  checkUint(o.deviceId, 0xffff, 'device ID');
  checkUint(o.classCode, 0xffffff, 'class code');
  const h = PCI_HEADER;
  cs.define(h.VENDOR_ID, 2, o.vendorId);
  cs.define(h.DEVICE_ID, 2, o.deviceId);
  cs.define(h.COMMAND, 2, 0, { writable: PCI_COMMAND.MASTER | (pin ? PCI_COMMAND.INTX_DISABLE : 0) });
  cs.define(h.STATUS, 2, 0, { clearable: PCI_STATUS_ERROR_BITS });
  cs.define(h.REVISION_ID, 1, o.revision ?? 0);
  cs.define(h.CLASS_PROG, 1, o.classCode & 0xff);
  cs.define(h.CLASS_DEVICE, 2, o.classCode >>> 8);
  // Cache line size is a plain RW byte that changes nothing on PCIe.
  cs.define(h.CACHE_LINE_SIZE, 1, 0, { writable: 0xff });
  cs.define(h.HEADER_TYPE, 1, o.multiFunction ? 0x80 : 0x00);
  cs.define(h.SUBSYSTEM_VENDOR_ID, 2, o.subsystemVendorId ?? 0);
  cs.define(h.SUBSYSTEM_ID, 2, o.subsystemId ?? 0);
  cs.define(h.CAPABILITY_LIST, 1, 0);
  // Interrupt line is scratch for the OS; the pin is wired.
  cs.define(h.INTERRUPT_LINE, 1, 0, { writable: 0xff });
  cs.define(h.INTERRUPT_PIN, 1, pin);
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new VfioError('EINVAL', `${what} must be an integer from 0 to 0x${max.toString(16)}, not ${v}`);
  }
}

function leOf(bytes: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + bytes[offset + i]!;
  return v;
}
