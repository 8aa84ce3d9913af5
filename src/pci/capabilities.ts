/**
 * The capability list: Power Management, MSI, MSI-X, PCI Express and
 * vendor-specific structures, laid out one after another from 0x40 and
 * chained through their next pointers, starting at the capabilities pointer.
 *
 * Each structure declares which of its bits are RW and RW1C; everything else
 * is read-only and ignores writes, as in hardware. The few registers whose
 * writes mean more than "store the bits" (MSI mask bits, MSI-X function mask,
 * PM power state, PCIe FLR) react through config-space write listeners.
 */

import { VfioError } from '../base/errors.js';
import type { Bars } from './bar.js';
import { type ConfigSpace, PCI_HEADER, PCI_HEADER_SIZE, PCI_STATUS } from './config-space.js';
import { MSIX_MAX_VECTORS, MsixTable } from './msix-table.js';

/** Capability IDs (pci_regs.h PCI_CAP_ID_*). */
export const PCI_CAP_ID = {
  PM: 0x01,
  MSI: 0x05,
  VNDR: 0x09,
  EXP: 0x10,
  MSIX: 0x11,
} as const;

/** Offsets shared by every capability: ID, then next pointer. */
const CAP_ID = 0;
const CAP_NEXT = 1;
const CONFIG_END = 0x100;

/** Builds the capability list of one function's config space. */
export class CapabilityList {
  readonly #cs: ConfigSpace;
  #next = PCI_HEADER_SIZE;
  #last = -1;

  constructor(cs: ConfigSpace) {
    this.#cs = cs;
  }

  /** Power Management (version 3, D0 and D3hot, no PME). */
  addPowerManagement(options: PmOptions = {}, at?: number): PmCapability {
    return new PmCapability(this.#cs, this.#allocate(PCI_CAP_ID.PM, PM_LENGTH, at), options);
  }

  /** MSI with 1..32 vectors, 32 or 64-bit address, optional per-vector masking. */
  addMsi(options: MsiOptions, at?: number): MsiCapability {
    const layout = msiLayout(options);
    return new MsiCapability(this.#cs, this.#allocate(PCI_CAP_ID.MSI, layout.length, at), options, layout);
  }

  /** MSI-X with its table and PBA in memory BARs; `bars` checks they fit there. */
  addMsix(options: MsixOptions, bars?: Bars, at?: number): MsixCapability {
    checkMsix(options, bars);
    return new MsixCapability(this.#cs, this.#allocate(PCI_CAP_ID.MSIX, MSIX_LENGTH, at), options);
  }

  /** A minimal version 2 PCI Express capability (needs 4 KiB config space). */
  addExpress(options: ExpressOptions = {}, at?: number): ExpressCapability {
    if (this.#cs.size < 4096) {
      throw new VfioError('EINVAL', 'a PCI Express capability needs the 4 KiB extended config space');
    }
    return new ExpressCapability(this.#cs, this.#allocate(PCI_CAP_ID.EXP, EXP_LENGTH, at), options);
  }

  /** A vendor-specific capability carrying `data` after its 3-byte header. Returns its offset. */
  addVendorSpecific(data: Uint8Array, at?: number): number {
    const length = 3 + data.length;
    if (length > 0xff) throw new VfioError('EINVAL', `vendor-specific capability of ${length} bytes exceeds 255`);
    const off = this.#allocate(PCI_CAP_ID.VNDR, length, at);
    this.#cs.define(off + 2, 1, length);
    data.forEach((b, i) => this.#cs.define(off + 3 + i, 1, b));
    return off;
  }

  /** Reserves `length` bytes at `at` (or the next free dword) and links it into the list. */
  #allocate(id: number, length: number, at?: number): number {
    const off = at ?? this.#next;
    if (!Number.isInteger(off) || off % 4 !== 0 || off < this.#next || off + length > CONFIG_END) {
      throw new VfioError(
        'EINVAL',
        `capability 0x${id.toString(16)} of ${length} bytes cannot go at 0x${off.toString(16)}: ` +
          `it needs a dword-aligned offset from 0x${this.#next.toString(16)} with room below 0x100`,
      );
    }
    const cs = this.#cs;
    cs.define(off + CAP_ID, 1, id);
    cs.define(off + CAP_NEXT, 1, 0);
    if (this.#last < 0) cs.define(PCI_HEADER.CAPABILITY_LIST, 1, off);
    else cs.define(this.#last + CAP_NEXT, 1, off);
    cs.setBits(PCI_HEADER.STATUS, 2, PCI_STATUS.CAP_LIST, true);
    this.#last = off;
    this.#next = (off + length + 3) & ~3;
    return off;
  }
}

// ---- Power Management -------------------------------------------------------

const PM_LENGTH = 8;
/** PM register offsets and bits (pci_regs.h PCI_PM_*). */
export const PCI_PM = {
  PMC: 2,
  CTRL: 4,
  PMC_VERSION_3: 0x0003,
  PMC_D1: 0x0200,
  PMC_D2: 0x0400,
  CTRL_STATE_MASK: 0x0003,
  CTRL_NO_SOFT_RESET: 0x0008,
} as const;

/** Which of the optional power states D1 and D2 the function supports. */
export interface PmOptions {
  d1?: boolean;
  d2?: boolean;
}

/** Power states D0..D3hot as the PMCSR encodes them. */
export type PowerState = 0 | 1 | 2 | 3;

/** The Power Management capability: tracks the power state software writes to PMCSR. */
export class PmCapability {
  readonly offset: number;
  readonly #cs: ConfigSpace;
  readonly #supported: ReadonlySet<number>;
  #state: PowerState = 0;
  /** Called after software moved the function to another power state. */
  onPowerStateChange: ((from: PowerState, to: PowerState) => void) | null = null;

  constructor(cs: ConfigSpace, offset: number, o: PmOptions) {
    this.#cs = cs;
    this.offset = offset;
    this.#supported = new Set([0, 3, ...(o.d1 ? [1] : []), ...(o.d2 ? [2] : [])]);
    cs.define(offset + PCI_PM.PMC, 2, PCI_PM.PMC_VERSION_3 | (o.d1 ? PCI_PM.PMC_D1 : 0) | (o.d2 ? PCI_PM.PMC_D2 : 0));
    // No_Soft_Reset: leaving D3hot keeps the device's state, so the OS need not re-initialise it.
    cs.define(offset + PCI_PM.CTRL, 2, PCI_PM.CTRL_NO_SOFT_RESET, { writable: PCI_PM.CTRL_STATE_MASK });
    cs.define(offset + 6, 2, 0);
    cs.onWrite(offset + PCI_PM.CTRL, 1, () => this.#stateWritten());
  }

  /** The state software last moved the function to; unsupported states are refused. */
  get powerState(): PowerState {
    return this.#state;
  }

  /** Takes the power state from PMCSR again (after config space was restored wholesale). */
  syncFromConfig(): void {
    const want = (this.#cs.getU16(this.offset + PCI_PM.CTRL) & PCI_PM.CTRL_STATE_MASK) as PowerState;
    this.#state = this.#supported.has(want) ? want : 0;
  }

  /** Back to D0, as after a function reset. */
  reset(): void {
    this.#state = 0;
    this.#cs.setBits(this.offset + PCI_PM.CTRL, 2, PCI_PM.CTRL_STATE_MASK, false);
  }

  #stateWritten(): void {
    const at = this.offset + PCI_PM.CTRL;
    const want = (this.#cs.getU16(at) & PCI_PM.CTRL_STATE_MASK) as PowerState;
    if (!this.#supported.has(want)) {
      // An unsupported state completes the write but changes nothing.
      this.#cs.setU16(at, (this.#cs.getU16(at) & ~PCI_PM.CTRL_STATE_MASK) | this.#state);
      return;
    }
    const from = this.#state;
    this.#state = want;
    if (from !== want) this.onPowerStateChange?.(from, want);
  }
}

// ---- MSI ---------------------------------------------------------------------

/** MSI message control bits (pci_regs.h PCI_MSI_FLAGS_*). */
export const PCI_MSI_FLAGS = {
  ENABLE: 0x0001,
  QMASK: 0x000e,
  QSIZE: 0x0070,
  ADDR64: 0x0080,
  MASKBIT: 0x0100,
} as const;
const MSI_FLAGS = 2;
const MSI_ADDRESS_LO = 4;

export interface MsiOptions {
  /** Vectors the function asks for: 1, 2, 4, 8, 16 or 32. */
  vectors: number;
  /** 64-bit message address. Default true. */
  address64?: boolean;
  /** Per-vector mask and pending bits. Default true. */
  perVectorMask?: boolean;
}

interface MsiLayout {
  length: number;
  addressHi: number;
  data: number;
  mask: number;
  pending: number;
}

function msiLayout(o: MsiOptions): MsiLayout {
  if (![1, 2, 4, 8, 16, 32].includes(o.vectors)) {
    throw new VfioError('EINVAL', `MSI vectors must be 1, 2, 4, 8, 16 or 32, not ${o.vectors}`);
  }
  const a64 = o.address64 ?? true;
  const masked = o.perVectorMask ?? true;
  const data = a64 ? 0x0c : 0x08;
  return {
    addressHi: a64 ? 0x08 : -1,
    data,
    mask: masked ? data + 4 : -1,
    pending: masked ? data + 8 : -1,
    length: masked ? data + 12 : data + 2,
  };
}

/** The MSI capability: its registers in config space, and vector delivery with per-vector masking. */
export class MsiCapability {
  readonly offset: number;
  readonly vectors: number;
  readonly address64: boolean;
  readonly perVectorMask: boolean;
  /** Sends vector `v`'s message; set by whoever owns the interrupt triggers. */
  onDeliver: ((vector: number) => void) | null = null;
  readonly #cs: ConfigSpace;
  readonly #layout: MsiLayout;

  constructor(cs: ConfigSpace, offset: number, o: MsiOptions, layout: MsiLayout) {
    this.#cs = cs;
    this.offset = offset;
    this.vectors = o.vectors;
    this.address64 = layout.addressHi >= 0;
    this.perVectorMask = layout.mask >= 0;
    this.#layout = layout;
    const mmc = Math.log2(o.vectors) << 1;
    const flags = mmc | (this.address64 ? PCI_MSI_FLAGS.ADDR64 : 0) | (this.perVectorMask ? PCI_MSI_FLAGS.MASKBIT : 0);
    cs.define(offset + MSI_FLAGS, 2, flags, { writable: PCI_MSI_FLAGS.ENABLE | PCI_MSI_FLAGS.QSIZE });
    // The address is dword aligned: its two low bits are hardwired to 0.
    cs.define(offset + MSI_ADDRESS_LO, 4, 0, { writable: 0xfffffffc });
    if (this.address64) cs.define(offset + layout.addressHi, 4, 0, { writable: 0xffffffff });
    cs.define(offset + layout.data, 2, 0, { writable: 0xffff });
    if (this.perVectorMask) {
      cs.define(offset + layout.data + 2, 2, 0);
      // Only implemented vectors have mask bits.
      cs.define(offset + layout.mask, 4, 0, { writable: vectorBits(o.vectors) });
      cs.define(offset + layout.pending, 4, 0);
      cs.onWrite(offset + layout.mask, 4, () => this.#deliverUnmasked());
    }
  }

  /** Length of the structure in config space. */
  get length(): number {
    return this.#layout.length;
  }

  /** Config offset of the pending bits the function sets (-1 without per-vector masking). */
  get pendingOffset(): number {
    return this.perVectorMask ? this.offset + this.#layout.pending : -1;
  }

  /** The MSI Enable bit of message control. */
  get enabled(): boolean {
    return (this.#flags() & PCI_MSI_FLAGS.ENABLE) !== 0;
  }

  /** Vectors software granted through Multiple Message Enable (never more than implemented). */
  get allocatedVectors(): number {
    return Math.min(this.vectors, 1 << ((this.#flags() & PCI_MSI_FLAGS.QSIZE) >>> 4));
  }

  /**
   * Sets the enable bit and grants `vectors` from the device's side, as a
   * host kernel does to a function whose MSI it hands to a user.
   */
  setEnabled(on: boolean, vectors = 1): void {
    const at = this.offset + MSI_FLAGS;
    let flags = this.#flags() & ~(PCI_MSI_FLAGS.ENABLE | (on ? PCI_MSI_FLAGS.QSIZE : 0));
    if (on) {
      const mme = Math.ceil(Math.log2(Math.min(Math.max(vectors, 1), this.vectors)));
      flags |= PCI_MSI_FLAGS.ENABLE | (mme << 4);
    }
    this.#cs.setU16(at, flags);
  }

  /** The message vector `v` sends: the data's low bits carry the vector number. */
  message(v: number): { address: bigint; data: number } {
    this.#checkVector(v);
    const lo = BigInt(this.#cs.getU32(this.offset + MSI_ADDRESS_LO));
    const hi = this.address64 ? BigInt(this.#cs.getU32(this.offset + this.#layout.addressHi)) : 0n;
    const base = this.#cs.getU16(this.offset + this.#layout.data);
    const low = this.allocatedVectors - 1;
    return { address: (hi << 32n) | lo, data: (base & ~low) | (v & low) };
  }

  /** Vector `v`'s mask bit; always false without per-vector masking. */
  isMasked(v: number): boolean {
    this.#checkVector(v);
    return this.perVectorMask && (this.#cs.getU32(this.offset + this.#layout.mask) & bit(v)) !== 0;
  }

  /** Whether vector `v` fired while masked and waits for its unmask. */
  isPending(v: number): boolean {
    this.#checkVector(v);
    return this.perVectorMask && (this.#cs.getU32(this.offset + this.#layout.pending) & bit(v)) !== 0;
  }

  /**
   * Vector `v` fires: sent through `onDeliver` unless masked, in which case
   * its pending bit holds it until software unmasks it. Returns whether it was sent.
   */
  fire(v: number): boolean {
    this.#checkVector(v);
    if (this.isMasked(v)) {
      this.#setPending(v, true);
      return false;
    }
    this.onDeliver?.(v);
    return true;
  }

  /** Disabled, no message, nothing masked or pending: the power-on state. */
  reset(): void {
    const o = this.offset;
    this.#cs.setU16(o + MSI_FLAGS, this.#flags() & ~(PCI_MSI_FLAGS.ENABLE | PCI_MSI_FLAGS.QSIZE));
    this.#cs.setU32(o + MSI_ADDRESS_LO, 0);
    if (this.address64) this.#cs.setU32(o + this.#layout.addressHi, 0);
    this.#cs.setU16(o + this.#layout.data, 0);
    if (this.perVectorMask) {
      this.#cs.setU32(o + this.#layout.mask, 0);
      this.#cs.setU32(o + this.#layout.pending, 0);
    }
  }

  #deliverUnmasked(): void {
    const pending = this.#cs.getU32(this.offset + this.#layout.pending);
    const mask = this.#cs.getU32(this.offset + this.#layout.mask);
    const ready = pending & ~mask;
    if (ready === 0) return;
    this.#cs.setU32(this.offset + this.#layout.pending, pending & mask);
    for (let v = 0; v < this.vectors; v++) if (ready & bit(v)) this.onDeliver?.(v);
  }

  #setPending(v: number, on: boolean): void {
    const at = this.offset + this.#layout.pending;
    const p = this.#cs.getU32(at);
    this.#cs.setU32(at, on ? p | bit(v) : p & ~bit(v));
  }

  #flags(): number {
    return this.#cs.getU16(this.offset + MSI_FLAGS);
  }

  #checkVector(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vectors) {
      throw new VfioError('EINVAL', `MSI vector ${v} does not exist (the function has ${this.vectors})`);
    }
  }
}

function bit(v: number): number {
  return (1 << v) >>> 0;
}

function vectorBits(n: number): number {
  return n >= 32 ? 0xffffffff : ((1 << n) - 1) >>> 0;
}

// ---- MSI-X ------------------------------------------------------------------

const MSIX_LENGTH = 12;
/** MSI-X register offsets and bits (pci_regs.h PCI_MSIX_*). */
export const PCI_MSIX = {
  FLAGS: 2,
  TABLE: 4,
  PBA: 8,
  FLAGS_QSIZE: 0x07ff,
  FLAGS_MASKALL: 0x4000,
  FLAGS_ENABLE: 0x8000,
  BIR_MASK: 0x7,
} as const;

/** Size of the MSI-X table and where the table and PBA live. */
export interface MsixOptions {
  /** Table entries, 1..2048. */
  vectors: number;
  /** BAR holding the table, and its offset there (8-byte aligned). */
  tableBar: number;
  tableOffset: number;
  /** BAR holding the pending bit array, and its offset there (8-byte aligned). */
  pbaBar: number;
  pbaOffset: number;
}

function checkMsix(o: MsixOptions, bars?: Bars): void {
  if (!Number.isInteger(o.vectors) || o.vectors < 1 || o.vectors > MSIX_MAX_VECTORS) {
    throw new VfioError('EINVAL', `MSI-X needs 1..${MSIX_MAX_VECTORS} vectors, not ${o.vectors}`);
  }
  const tableSize = o.vectors * 16;
  const pbaSize = Math.ceil(o.vectors / 64) * 8;
  const parts: Array<[string, number, number, number]> = [
    ['table', o.tableBar, o.tableOffset, tableSize],
    ['PBA', o.pbaBar, o.pbaOffset, pbaSize],
  ];
  for (const [what, bar, off, size] of parts) {
    if (!Number.isInteger(bar) || bar < 0 || bar > 5) throw new VfioError('EINVAL', `MSI-X ${what} BAR must be 0..5, not ${bar}`);
    if (!Number.isInteger(off) || off < 0 || off % 8 !== 0 || off > 0xfffffff8) {
      throw new VfioError('EINVAL', `MSI-X ${what} offset 0x${off.toString(16)} must be 8-byte aligned`);
    }
    if (!bars) continue;
    const desc = bars.get(bar);
    if (!desc || desc.kind === 'io') throw new VfioError('EINVAL', `MSI-X ${what} needs memory BAR${bar}, which the function lacks`);
    if (off + size > desc.size) {
      throw new VfioError('EINVAL', `MSI-X ${what} (${size} bytes at 0x${off.toString(16)}) does not fit in the ${desc.size}-byte BAR${bar}`);
    }
  }
  if (o.tableBar === o.pbaBar && o.tableOffset < o.pbaOffset + pbaSize && o.pbaOffset < o.tableOffset + tableSize) {
    throw new VfioError('EINVAL', 'MSI-X table and PBA overlap');
  }
}

/** The MSI-X capability in config space, with the table and PBA it points to. */
export class MsixCapability {
  readonly offset: number;
  readonly vectors: number;
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
  /** The table and PBA behind this capability. */
  readonly table: MsixTable;
  readonly #cs: ConfigSpace;

  constructor(cs: ConfigSpace, offset: number, o: MsixOptions) {
    this.#cs = cs;
    this.offset = offset;
    this.vectors = o.vectors;
    this.tableBar = o.tableBar;
    this.tableOffset = o.tableOffset;
    this.pbaBar = o.pbaBar;
    this.pbaOffset = o.pbaOffset;
    this.table = new MsixTable(o.vectors);
    cs.define(offset + PCI_MSIX.FLAGS, 2, o.vectors - 1, { writable: PCI_MSIX.FLAGS_ENABLE | PCI_MSIX.FLAGS_MASKALL });
    cs.define(offset + PCI_MSIX.TABLE, 4, (o.tableOffset | o.tableBar) >>> 0);
    cs.define(offset + PCI_MSIX.PBA, 4, (o.pbaOffset | o.pbaBar) >>> 0);
    cs.onWrite(offset + PCI_MSIX.FLAGS, 2, () => {
      this.table.functionMasked = this.functionMasked;
    });
  }

  /** The MSI-X Enable bit of message control. */
  get enabled(): boolean {
    return (this.#flags() & PCI_MSIX.FLAGS_ENABLE) !== 0;
  }

  /** The Function Mask bit of message control: every vector held while set. */
  get functionMasked(): boolean {
    return (this.#flags() & PCI_MSIX.FLAGS_MASKALL) !== 0;
  }

  /** Sets the enable bit from the device's side (a host enabling MSI-X for a user clears the function mask). */
  setEnabled(on: boolean): void {
    const at = this.offset + PCI_MSIX.FLAGS;
    this.#cs.setBits(at, 2, PCI_MSIX.FLAGS_ENABLE, on);
    if (on) this.#cs.setBits(at, 2, PCI_MSIX.FLAGS_MASKALL, false);
    this.table.functionMasked = this.functionMasked;
  }

  /** Whether `[offset, offset + length)` of BAR `bar` touches the table or the PBA. */
  claims(bar: number, offset: number, length: number): 'table' | 'pba' | null {
    if (bar === this.tableBar && offset < this.tableOffset + this.table.tableSize && offset + length > this.tableOffset) return 'table';
    if (bar === this.pbaBar && offset < this.pbaOffset + this.table.pbaSize && offset + length > this.pbaOffset) return 'pba';
    return null;
  }

  /** Disabled, unmasked function; table back to all vectors masked. */
  reset(): void {
    this.#cs.setBits(this.offset + PCI_MSIX.FLAGS, 2, PCI_MSIX.FLAGS_ENABLE | PCI_MSIX.FLAGS_MASKALL, false);
    this.table.reset();
  }

  #flags(): number {
    return this.#cs.getU16(this.offset + PCI_MSIX.FLAGS);
  }
}

// ---- PCI Express ------------------------------------------------------------

const EXP_LENGTH = 0x3c;
/** PCI Express capability register offsets and bits (pci_regs.h PCI_EXP_*). */
export const PCI_EXP = {
  FLAGS: 0x02,
  DEVCAP: 0x04,
  DEVCTL: 0x08,
  DEVSTA: 0x0a,
  LNKCAP: 0x0c,
  LNKCTL: 0x10,
  LNKSTA: 0x12,
  DEVCAP2: 0x24,
  DEVCTL2: 0x28,
  LNKCAP2: 0x2c,
  LNKCTL2: 0x30,
  FLAGS_VERSION_2: 0x0002,
  DEVCAP_RBER: 0x00008000,
  DEVCAP_FLR: 0x10000000,
  DEVCTL_RELAX_EN: 0x0010,
  DEVCTL_NOSNOOP_EN: 0x0800,
  DEVCTL_READRQ_512B: 0x2000,
  DEVCTL_BCR_FLR: 0x8000,
  DEVSTA_ERRORS: 0x000f,
  LNK_SPEED_2_5GT: 0x1,
  LNK_WIDTH_X1: 0x10,
  LNKCAP2_SLS_2_5GT: 0x2,
} as const;

/** Device/port type field values of an endpoint. */
export const PCI_EXP_TYPE = {
  endpoint: 0x0,
  'legacy-endpoint': 0x1,
  'rc-endpoint': 0x9,
} as const;

/** The endpoint type of a PCI Express capability, and whether it has FLR. */
export interface ExpressOptions {
  type?: keyof typeof PCI_EXP_TYPE;
  /**
   * Advertise Function Level Reset; `onFlr` runs when software initiates one.
   * Without it the FLR bit is read-only.
   */
  onFlr?: () => void;
}

// Device control bits an endpoint implements: error reporting enables, relaxed
// ordering, max payload size, no snoop, max read request size.
const DEVCTL_RW = 0x000f | 0x0010 | 0x00e0 | 0x0800 | 0x7000;
// Link control: ASPM control, common clock, extended synch.
const LNKCTL_RW = 0x0003 | 0x0040 | 0x0080;

/** The PCI Express capability: fixed identity and link registers, and FLR when asked for. */
export class ExpressCapability {
  readonly offset: number;
  readonly type: keyof typeof PCI_EXP_TYPE;

  constructor(cs: ConfigSpace, offset: number, o: ExpressOptions) {
    this.offset = offset;
    this.type = o.type ?? 'endpoint';
    const typeCode = PCI_EXP_TYPE[this.type];
    if (typeCode === undefined) throw new VfioError('EINVAL', `unknown PCI Express device type ${String(o.type)}`);
    const flr = o.onFlr;
    // Root-complex integrated endpoints have no link: those registers are reserved.
    const link = this.type !== 'rc-endpoint';
    cs.define(offset + PCI_EXP.FLAGS, 2, PCI_EXP.FLAGS_VERSION_2 | (typeCode << 4));
    cs.define(offset + PCI_EXP.DEVCAP, 4, PCI_EXP.DEVCAP_RBER | (flr ? PCI_EXP.DEVCAP_FLR : 0));
    cs.define(offset + PCI_EXP.DEVCTL, 2, PCI_EXP.DEVCTL_RELAX_EN | PCI_EXP.DEVCTL_NOSNOOP_EN | PCI_EXP.DEVCTL_READRQ_512B, {
      writable: DEVCTL_RW | (flr ? PCI_EXP.DEVCTL_BCR_FLR : 0),
    });
    cs.define(offset + PCI_EXP.DEVSTA, 2, 0, { clearable: PCI_EXP.DEVSTA_ERRORS });
    cs.define(offset + PCI_EXP.LNKCAP, 4, link ? PCI_EXP.LNK_SPEED_2_5GT | PCI_EXP.LNK_WIDTH_X1 : 0);
    cs.define(offset + PCI_EXP.LNKCTL, 2, 0, { writable: link ? LNKCTL_RW : 0 });
    cs.define(offset + PCI_EXP.LNKSTA, 2, link ? PCI_EXP.LNK_SPEED_2_5GT | PCI_EXP.LNK_WIDTH_X1 : 0);
    cs.define(offset + PCI_EXP.LNKCAP2, 4, link ? PCI_EXP.LNKCAP2_SLS_2_5GT : 0);
    cs.define(offset + PCI_EXP.LNKCTL2, 2, link ? PCI_EXP.LNK_SPEED_2_5GT : 0);
    if (flr) {
      cs.onWrite(offset + PCI_EXP.DEVCTL + 1, 1, () => {
        const at = offset + PCI_EXP.DEVCTL;
        if ((cs.getU16(at) & PCI_EXP.DEVCTL_BCR_FLR) === 0) return;
        // Initiate FLR always reads 0.
        cs.setBits(at, 2, PCI_EXP.DEVCTL_BCR_FLR, false);
        flr();
      });
    }
  }
}
