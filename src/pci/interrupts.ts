/**
 * How an emulated PCI function raises an interrupt, and the client's side of
 * it (VFIO_DEVICE_GET_IRQ_INFO / SET_IRQS).
 *
 * The function's config space decides the mechanism, as on real hardware:
 * MSI-X when its enable bit is set, else MSI when enabled, else the INTx pin
 * (unless the command register's INTx Disable bit is set). Each mechanism
 * ends in an EventNotifier the client handed over (an eventfd on the wire):
 *
 * - INTx is level-triggered and automasked: signalling masks it until the
 *   client unmasks (after the guest's EOI); if the line is still asserted
 *   then, it is signalled again.
 * - MSI and MSI-X are edge messages, held as pending bits while masked (MSI
 *   mask bits in config space, MSI-X mask bits in the table and the function
 *   mask) and sent when unmasked.
 *
 * SET_IRQS acts on the function the way a host kernel acts on a physical
 * one whose interrupts it hands to a user: enabling MSI or MSI-X triggers
 * sets the capability's enable bit, and attaching an MSI-X vector unmasks it
 * in the table. A client that programs config space itself (QEMU forwards
 * the guest's writes) sees the same bits it wrote.
 */

import { VfioError } from '../base/errors.js';
import { IrqInfoFlags, PciIrq, type EventNotifier, type IrqInfo, type SetIrqsRequest } from '../base/uapi.js';
import type { MsiCapability, MsixCapability } from './capabilities.js';
import { type ConfigSpace, PCI_COMMAND, PCI_HEADER, PCI_STATUS } from './config-space.js';

/** A VFIO PCI interrupt index: INTx, MSI, MSI-X, ERR, REQ. */
type IrqIndex = 0 | 1 | 2 | 3 | 4;

/** The mechanism config space currently selects. */
export type InterruptMode = 'intx' | 'msi' | 'msix';

/** The parts of a function that take part in interrupts. */
export interface InterruptSources {
  config: ConfigSpace;
  msi?: MsiCapability;
  msix?: MsixCapability;
  /** Report an ERR interrupt index (PCI Express functions do, for AER). */
  errorReporting?: boolean;
}

const INDEX_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'] as const;

/**
 * The interrupts of one function: the client's triggers per VFIO irq index
 * (owned: closed when replaced, disabled or released) and the device's
 * line and vectors, routed by the mode config space selects.
 */
export class PciInterrupts {
  readonly #cs: ConfigSpace;
  readonly #msi: MsiCapability | undefined;
  readonly #msix: MsixCapability | undefined;
  readonly #counts: readonly number[];
  readonly #triggers: Array<Array<EventNotifier | null>>;
  /** Which of INTx/MSI/MSI-X has triggers attached (VFIO allows one at a time). */
  #active: IrqIndex | null = null;
  /** INTx line as the device drives it. */
  #level = false;
  /** An INTx pulse raised but not yet signalled. */
  #latched = false;
  /** VFIO's INTx mask: set on every signal, cleared by the client's UNMASK. */
  #intxMasked = false;
  /** While paused (the device is stopped for migration): what would have been signalled. */
  #held: Set<number> | null = null;

  constructor(sources: InterruptSources) {
    this.#cs = sources.config;
    this.#msi = sources.msi;
    this.#msix = sources.msix;
    const pin = this.#cs.getU8(PCI_HEADER.INTERRUPT_PIN);
    this.#counts = [pin ? 1 : 0, this.#msi?.vectors ?? 0, this.#msix?.vectors ?? 0, sources.errorReporting ? 1 : 0, 1];
    this.#triggers = this.#counts.map((n) => new Array<EventNotifier | null>(n).fill(null));
    if (this.#msi) this.#msi.onDeliver = (v) => this.#signal(PciIrq.MSI, v);
    if (this.#msix) this.#msix.table.onDeliver = (v) => this.#signal(PciIrq.MSIX, v);
    // Software changing INTx Disable or the MSI/MSI-X enables may (re)start INTx.
    this.#cs.onWrite(PCI_HEADER.COMMAND, 2, () => this.#refreshIntx());
    if (this.#msi) this.#cs.onWrite(this.#msi.offset, this.#msi.length, () => this.#refreshIntx());
    if (this.#msix) this.#cs.onWrite(this.#msix.offset, 4, () => this.#refreshIntx());
  }

  /** The mechanism the function uses now. */
  get mode(): InterruptMode {
    if (this.#msix?.enabled) return 'msix';
    if (this.#msi?.enabled) return 'msi';
    return 'intx';
  }

  /** Whether the client has masked INTx (automask or MASK). */
  get intxMasked(): boolean {
    return this.#intxMasked;
  }

  // ---- client side --------------------------------------------------------

  /** VFIO_DEVICE_GET_IRQ_INFO for `index`. */
  info(index: number): IrqInfo {
    const i = checkIndex(index);
    const count = this.#counts[i]!;
    let flags: number = IrqInfoFlags.EVENTFD;
    if (i === PciIrq.INTX) flags |= IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED;
    // MSI keeps its block size; MSI-X vectors can be added one at a time.
    if (i === PciIrq.MSI) flags |= IrqInfoFlags.NORESIZE;
    return { index: i, count, flags };
  }

  /**
   * VFIO_DEVICE_SET_IRQS, decoded: dispatches to `setTriggers`, `disable`,
   * `trigger`, `mask` or `unmask`. On error no notifier has been taken.
   */
  setIrqs(req: SetIrqsRequest): void {
    if (req.count !== (req.data === 'none' ? req.count : req.values.length)) {
      throw new VfioError('EINVAL', `SET_IRQS carries ${req.data === 'none' ? 0 : req.values.length} values for count ${req.count}`);
    }
    if (req.action === 'trigger') {
      if (req.data === 'eventfd') return this.setTriggers(req.index, req.start, req.values);
      if (req.data === 'bool') return this.trigger(req.index, req.start, req.count, req.values);
      if (req.count === 0) return this.disable(req.index);
      return this.trigger(req.index, req.start, req.count);
    }
    if (req.data === 'eventfd') {
      throw new VfioError('EINVAL', `${req.action} through an eventfd is not supported; use DATA_NONE or DATA_BOOL`);
    }
    const which = req.data === 'bool' ? req.values : undefined;
    if (req.action === 'mask') this.mask(req.index, req.start, req.count, which);
    else this.unmask(req.index, req.start, req.count, which);
  }

  /**
   * SET_IRQS ACTION_TRIGGER with DATA_EVENTFD: attaches `notifiers[k]` to
   * vector `start + k`; null detaches (fd -1). The object takes ownership and
   * closes each notifier when it is replaced or dropped.
   */
  setTriggers(index: number, start: number, notifiers: ReadonlyArray<EventNotifier | null>): void {
    const i = checkIndex(index);
    this.#checkRange(i, start, notifiers.length);
    const exclusive = i <= PciIrq.MSIX;
    if (exclusive && this.#active !== null && this.#active !== i && notifiers.some((n) => n)) {
      throw new VfioError('EINVAL', `${INDEX_NAMES[this.#active]} triggers are set; disable them before using ${INDEX_NAMES[i]}`);
    }
    const slots = this.#triggers[i]!;
    notifiers.forEach((n, k) => {
      const old = slots[start + k];
      if (old && old !== n) old.close();
      slots[start + k] = n;
    });
    if (!exclusive) return;
    const any = slots.some((n) => n);
    if (!any) {
      if (this.#active === i) this.disable(i);
      return;
    }
    const first = this.#active !== i;
    this.#active = i;
    if (i === PciIrq.MSI && first) this.#msi!.setEnabled(true, start + notifiers.length);
    if (i === PciIrq.MSIX) {
      if (first) this.#msix!.setEnabled(true);
      notifiers.forEach((n, k) => this.#msix!.table.setVectorMasked(start + k, n === null));
    }
    this.#refreshIntx();
  }

  /** SET_IRQS ACTION_TRIGGER, DATA_NONE, count 0: drops every trigger of `index`. */
  disable(index: number): void {
    const i = checkIndex(index);
    const slots = this.#triggers[i]!;
    slots.forEach((n, k) => {
      n?.close();
      slots[k] = null;
    });
    if (i === PciIrq.INTX) this.#intxMasked = false;
    if (this.#active !== i) return;
    this.#active = null;
    if (i === PciIrq.MSI) this.#msi!.setEnabled(false);
    if (i === PciIrq.MSIX) {
      for (let v = 0; v < this.#msix!.vectors; v++) this.#msix!.table.setVectorMasked(v, true);
      this.#msix!.setEnabled(false);
    }
    this.#refreshIntx();
  }

  /**
   * SET_IRQS ACTION_TRIGGER with DATA_NONE (every vector of the range) or
   * DATA_BOOL (`which[k]` true): signals the attached triggers, a loopback
   * the client uses to test its eventfds.
   */
  trigger(index: number, start: number, count: number, which?: ReadonlyArray<boolean>): void {
    const i = checkIndex(index);
    this.#checkRange(i, start, count);
    checkWhich(which, count);
    for (let k = 0; k < count; k++) if (!which || which[k]) this.#signal(i, start + k);
  }

  /** SET_IRQS ACTION_MASK (INTx only; MSI and MSI-X are masked in the function). */
  mask(index: number, start: number, count: number, which?: ReadonlyArray<boolean>): void {
    this.#checkMaskable(index, start, count, which);
    if (!which || which[0]) this.#intxMasked = true;
  }

  /** SET_IRQS ACTION_UNMASK: an INTx still asserted is signalled again at once. */
  unmask(index: number, start: number, count: number, which?: ReadonlyArray<boolean>): void {
    this.#checkMaskable(index, start, count, which);
    if (which && !which[0]) return;
    this.#intxMasked = false;
    this.#refreshIntx();
  }

  /** The client went away: every trigger is closed; the function's state stays. */
  release(): void {
    for (const slots of this.#triggers) {
      slots.forEach((n, k) => {
        n?.close();
        slots[k] = null;
      });
    }
    this.#active = null;
    this.#intxMasked = false;
  }

  // ---- device side ----------------------------------------------------------

  /**
   * Drives the function's interrupt line (a level source such as a UART's
   * IRQ output). In INTx mode the line is INTx; under MSI or MSI-X a rising
   * edge sends vector 0.
   */
  setLevel(asserted: boolean): void {
    const rising = asserted && !this.#level;
    this.#level = asserted;
    if (rising && this.mode !== 'intx') this.raise(0);
    else this.#refreshIntx();
  }

  /** The line as the device drives it. */
  get level(): boolean {
    return this.#level;
  }

  /**
   * Raises interrupt `vector` once (an edge): MSI-X vector, MSI vector
   * (the last granted one when software granted fewer), or an INTx pulse
   * that is held until it can be signalled.
   */
  raise(vector = 0): void {
    if (!Number.isInteger(vector) || vector < 0) throw new VfioError('EINVAL', `interrupt vector ${vector} is not a vector number`);
    switch (this.mode) {
      case 'msix':
        this.#msix!.table.fire(vector);
        return;
      case 'msi':
        this.#msi!.fire(Math.min(vector, this.#msi!.allocatedVectors - 1));
        return;
      case 'intx':
        if (this.#counts[PciIrq.INTX] === 0) return;
        this.#latched = true;
        this.#refreshIntx();
    }
  }

  /**
   * The device stops (migration STOP): from now on INTx, MSI and MSI-X
   * signals are held, each at most once, instead of sent. ERR and REQ are
   * the host's and still go out.
   */
  pause(): void {
    this.#held ??= new Set();
  }

  /**
   * The device runs again: what was held is sent (to the triggers attached
   * now), and an INTx line that is high is signalled if it may be.
   */
  resume(): void {
    const held = this.#held;
    this.#held = null;
    for (const key of held ?? []) this.#signal((key >>> 16) as IrqIndex, key & 0xffff);
    this.#refreshIntx();
  }

  /** True between pause() and resume(). */
  get paused(): boolean {
    return this.#held !== null;
  }

  /** Asks the client to release the device (REQ). Returns whether anyone was told. */
  signalRequest(): boolean {
    return this.#signal(PciIrq.REQ, 0);
  }

  /** Reports an uncorrectable error to the client (ERR). Returns whether anyone was told. */
  signalError(): boolean {
    return this.#counts[PciIrq.ERR] ? this.#signal(PciIrq.ERR, 0) : false;
  }

  /**
   * Function reset, called after the capabilities were reset: the line drops
   * and held pulses vanish; the client's triggers stay, and so does the
   * MSI or MSI-X enable they stand for, as a host restores the interrupt
   * state of a function it handed to a user once it has reset it.
   */
  reset(): void {
    this.#level = false;
    this.#latched = false;
    this.#held?.clear();
    const slots = this.#triggers[this.#active ?? PciIrq.INTX]!;
    if (this.#active === PciIrq.MSI) {
      let granted = 0;
      slots.forEach((n, v) => {
        if (n) granted = v + 1;
      });
      this.#msi!.setEnabled(true, granted);
    } else if (this.#active === PciIrq.MSIX) {
      this.#msix!.setEnabled(true);
      slots.forEach((n, v) => {
        if (n) this.#msix!.table.setVectorMasked(v, false);
      });
    }
    this.#refreshIntx();
  }

  // ---- internals -----------------------------------------------------------

  /** Syncs the Interrupt Status bit and signals INTx when it may and must. */
  #refreshIntx(): void {
    const wanted = this.mode === 'intx' && this.#counts[PciIrq.INTX] !== 0 && (this.#level || this.#latched);
    this.#cs.setBits(PCI_HEADER.STATUS, 2, PCI_STATUS.INTERRUPT, wanted);
    if (!wanted || this.#intxMasked) return;
    if (this.#cs.getU16(PCI_HEADER.COMMAND) & PCI_COMMAND.INTX_DISABLE) return;
    if (!this.#signal(PciIrq.INTX, 0)) return;
    this.#intxMasked = true;
    this.#latched = false;
    // A pulse is gone once signalled; a level stays in Interrupt Status.
    this.#cs.setBits(PCI_HEADER.STATUS, 2, PCI_STATUS.INTERRUPT, this.#level);
  }

  #signal(index: IrqIndex, vector: number): boolean {
    const n = this.#triggers[index]![vector];
    if (!n || n.closed) return false;
    if (this.#held !== null && index <= PciIrq.MSIX) {
      this.#held.add((index << 16) | vector);
      return true;
    }
    n.signal();
    return true;
  }

  #checkRange(index: IrqIndex, start: number, count: number): void {
    const max = this.#counts[index]!;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > max) {
      throw new VfioError('EINVAL', `${INDEX_NAMES[index]} has ${max} interrupts; start ${start} count ${count} is outside them`);
    }
  }

  #checkMaskable(index: number, start: number, count: number, which?: ReadonlyArray<boolean>): void {
    const i = checkIndex(index);
    if (i !== PciIrq.INTX) {
      throw new VfioError('EINVAL', `${INDEX_NAMES[i]} cannot be masked through SET_IRQS; only INTx can`);
    }
    this.#checkRange(i, start, count);
    checkWhich(which, count);
  }
}

function checkIndex(index: number): IrqIndex {
  if (!Number.isInteger(index) || index < 0 || index >= PciIrq.NUM) {
    throw new VfioError('EINVAL', `interrupt index ${index} does not exist (0..4: INTx, MSI, MSI-X, ERR, REQ)`);
  }
  return index as IrqIndex;
}

function checkWhich(which: ReadonlyArray<boolean> | undefined, count: number): void {
  if (which && which.length !== count) {
    throw new VfioError('EINVAL', `${which.length} booleans given for ${count} interrupts`);
  }
}
