/**
 * The MSI-X table and pending bit array (PBA), the two structures of MSI-X
 * that live in a memory BAR rather than in config space.
 *
 * A vector fires through `fire()`. When it is masked (its own mask bit or the
 * function mask of the capability) the message is held as a pending bit
 * instead, and it is sent the moment the vector becomes unmasked, as the PCI
 * spec requires. Mask bits come out of reset set.
 */

import { VfioError } from '../base/errors.js';

/** Bytes per table entry and offsets within one (pci_regs.h PCI_MSIX_ENTRY_*). */
export const MSIX_ENTRY = {
  SIZE: 16,
  LOWER_ADDR: 0,
  UPPER_ADDR: 4,
  DATA: 8,
  VECTOR_CTRL: 12,
  CTRL_MASKBIT: 0x1,
} as const;

/** Most vectors an MSI-X capability can describe (11-bit table size field). */
export const MSIX_MAX_VECTORS = 2048;

// Writable bits of one entry, byte by byte: address bits 31:2, upper address,
// data, and the mask bit of vector control.
const ENTRY_RW = new Uint8Array([0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]);

/** The message of one vector, as software programmed it. */
export interface MsixEntry {
  address: bigint;
  data: number;
  masked: boolean;
}

/** The table and PBA of one MSI-X capability, as BAR bytes and per-vector state. */
export class MsixTable {
  readonly vectors: number;
  /** Table bytes in the BAR: 16 per vector. */
  readonly tableSize: number;
  /** PBA bytes in the BAR: one bit per vector, in whole qwords. */
  readonly pbaSize: number;
  /** Sends vector `v`'s message; set by whoever owns the interrupt triggers. */
  onDeliver: ((vector: number) => void) | null = null;

  readonly #table: Uint8Array;
  readonly #tableView: DataView;
  readonly #pba: Uint8Array;
  #functionMasked = false;

  constructor(vectors: number) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > MSIX_MAX_VECTORS) {
      throw new VfioError('EINVAL', `MSI-X needs 1..${MSIX_MAX_VECTORS} vectors, not ${vectors}`);
    }
    this.vectors = vectors;
    this.tableSize = vectors * MSIX_ENTRY.SIZE;
    this.pbaSize = Math.ceil(vectors / 64) * 8;
    this.#table = new Uint8Array(this.tableSize);
    this.#tableView = new DataView(this.#table.buffer);
    this.#pba = new Uint8Array(this.pbaSize);
    this.reset();
  }

  /** Power-on state: every vector masked, no message programmed, nothing pending. */
  reset(): void {
    this.#table.fill(0);
    this.#pba.fill(0);
    for (let v = 0; v < this.vectors; v++) this.#table[v * MSIX_ENTRY.SIZE + MSIX_ENTRY.VECTOR_CTRL] = MSIX_ENTRY.CTRL_MASKBIT;
    this.#functionMasked = false;
  }

  /** The table and the PBA, for migration: restoreState() takes it back. */
  saveState(): Uint8Array {
    const out = new Uint8Array(this.tableSize + this.pbaSize);
    out.set(this.#table);
    out.set(this.#pba, this.tableSize);
    return out;
  }

  /**
   * Puts back saveState()'s bytes: table bits through the masks software
   * writes with, PBA bits only for vectors that exist. EINVAL for another
   * size. The function mask is the capability's to set.
   */
  restoreState(saved: Uint8Array): void {
    if (saved.length !== this.tableSize + this.pbaSize) {
      throw new VfioError('EINVAL', `saved MSI-X state has ${saved.length} bytes, this table and PBA have ${this.tableSize + this.pbaSize}`);
    }
    for (let at = 0; at < this.tableSize; at++) {
      const rw = ENTRY_RW[at % MSIX_ENTRY.SIZE]!;
      this.#table[at] = saved[at]! & rw;
    }
    for (let i = 0; i < this.pbaSize; i++) {
      const first = i * 8;
      const valid = first >= this.vectors ? 0 : this.vectors - first >= 8 ? 0xff : (1 << (this.vectors - first)) - 1;
      this.#pba[i] = saved[this.tableSize + i]! & valid;
    }
  }

  // ---- software view (BAR accesses) --------------------------------------

  /** Reads table bytes at `offset` from the start of the table. */
  readTable(offset: number, out: Uint8Array): void {
    checkRange(offset, out.length, this.tableSize, 'MSI-X table');
    out.set(this.#table.subarray(offset, offset + out.length));
  }

  /** Writes table bytes through the RW bits; unmasking a pending vector sends it. */
  writeTable(offset: number, data: Uint8Array): void {
    checkRange(offset, data.length, this.tableSize, 'MSI-X table');
    const unmaskedBefore = this.#maskBitsOf(offset, data.length);
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      const rw = ENTRY_RW[at % MSIX_ENTRY.SIZE]!;
      this.#table[at] = (this.#table[at]! & ~rw) | (data[i]! & rw);
    }
    for (const v of unmaskedBefore) {
      if (!this.isVectorMasked(v)) this.#deliverIfPending(v);
    }
  }

  /** Reads PBA bytes at `offset` from the start of the PBA. */
  readPba(offset: number, out: Uint8Array): void {
    checkRange(offset, out.length, this.pbaSize, 'MSI-X PBA');
    out.set(this.#pba.subarray(offset, offset + out.length));
  }

  /** The PBA is read-only: writes are checked and dropped. */
  writePba(offset: number, data: Uint8Array): void {
    checkRange(offset, data.length, this.pbaSize, 'MSI-X PBA');
  }

  // ---- device view -------------------------------------------------------

  /** The message software programmed for vector `v`. */
  entry(v: number): MsixEntry {
    this.#checkVector(v);
    const base = v * MSIX_ENTRY.SIZE;
    const lo = this.#tableView.getUint32(base + MSIX_ENTRY.LOWER_ADDR, true);
    const hi = this.#tableView.getUint32(base + MSIX_ENTRY.UPPER_ADDR, true);
    return {
      address: (BigInt(hi) << 32n) | BigInt(lo),
      data: this.#tableView.getUint32(base + MSIX_ENTRY.DATA, true),
      masked: this.isVectorMasked(v),
    };
  }

  /** The vector's own mask bit (not the function mask). */
  isVectorMasked(v: number): boolean {
    this.#checkVector(v);
    return (this.#table[v * MSIX_ENTRY.SIZE + MSIX_ENTRY.VECTOR_CTRL]! & MSIX_ENTRY.CTRL_MASKBIT) !== 0;
  }

  /**
   * Sets a vector's mask bit from the device's side, as a host kernel does
   * when it hands the vector to a user; unmasking sends a pending message.
   */
  setVectorMasked(v: number, masked: boolean): void {
    this.#checkVector(v);
    const at = v * MSIX_ENTRY.SIZE + MSIX_ENTRY.VECTOR_CTRL;
    const byte = this.#table[at]!;
    this.#table[at] = masked ? byte | MSIX_ENTRY.CTRL_MASKBIT : byte & ~MSIX_ENTRY.CTRL_MASKBIT;
    if (!masked) this.#deliverIfPending(v);
  }

  /** The capability's Function Mask bit, mirrored here by the capability. */
  get functionMasked(): boolean {
    return this.#functionMasked;
  }

  set functionMasked(masked: boolean) {
    const was = this.#functionMasked;
    this.#functionMasked = masked;
    if (was && !masked) {
      for (let v = 0; v < this.vectors; v++) if (!this.isVectorMasked(v)) this.#deliverIfPending(v);
    }
  }

  /** Whether vector `v` has a message held back by a mask. */
  isPending(v: number): boolean {
    this.#checkVector(v);
    return (this.#pba[v >>> 3]! & (1 << (v & 7))) !== 0;
  }

  /**
   * Vector `v` fires: sent now through `onDeliver` when unmasked, otherwise
   * remembered in the PBA. Returns whether it was sent.
   */
  fire(v: number): boolean {
    this.#checkVector(v);
    if (this.#functionMasked || this.isVectorMasked(v)) {
      this.#setPending(v, true);
      return false;
    }
    this.onDeliver?.(v);
    return true;
  }

  #deliverIfPending(v: number): void {
    if (this.#functionMasked || !this.isPending(v)) return;
    this.#setPending(v, false);
    this.onDeliver?.(v);
  }

  #setPending(v: number, on: boolean): void {
    const i = v >>> 3;
    const bit = 1 << (v & 7);
    this.#pba[i] = on ? this.#pba[i]! | bit : this.#pba[i]! & ~bit;
  }

  /** Vectors whose mask bit lies in `[offset, offset + length)` and is set now. */
  #maskBitsOf(offset: number, length: number): number[] {
    const out: number[] = [];
    const first = Math.floor(offset / MSIX_ENTRY.SIZE);
    const last = Math.floor((offset + length - 1) / MSIX_ENTRY.SIZE);
    for (let v = first; v <= last && length > 0; v++) {
      const ctrl = v * MSIX_ENTRY.SIZE + MSIX_ENTRY.VECTOR_CTRL;
      if (ctrl >= offset && ctrl < offset + length && this.isVectorMasked(v)) out.push(v);
    }
    return out;
  }

  #checkVector(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vectors) {
      throw new VfioError('EINVAL', `MSI-X vector ${v} does not exist (the table has ${this.vectors})`);
    }
  }
}

function checkRange(offset: number, length: number, size: number, what: string): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new VfioError('EINVAL', `access of ${length} bytes at 0x${offset.toString(16)} runs outside the ${size}-byte ${what}`);
  }
}
