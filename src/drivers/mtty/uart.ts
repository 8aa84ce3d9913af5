/**
 * A 16550A UART whose transmitter is wired straight back to its receiver,
 * the serial port of the kernel's mtty sample (samples/vfio-mdev/mtty.c).
 *
 * Bytes written to THR land in a 16-byte FIFO and are read back from RBR.
 * That one FIFO is both the transmit and the receive side: THR is empty
 * (LSR THRE and TEMT) exactly when nothing is waiting to be read, so a
 * driver that fills the FIFO on THRE never overruns it.
 *
 * Interrupts follow the 16550A: IIR reports the highest-priority pending
 * source (receiver line status > received data or character timeout > THR
 * empty > modem status), and the interrupt output is high while any source
 * is pending. There is no clock, so a FIFO holding fewer bytes than the
 * trigger level reports the character timeout at once: every byte is
 * announced, as with a trigger level of 1.
 *
 * Pure logic: no I/O, no timers. The owner reads and writes the eight
 * registers and is told when the interrupt output changes.
 */

import { VfioError } from '../../base/errors.js';

/** Register offsets (include/uapi/linux/serial_reg.h). */
export const UART_REG = {
  RX: 0,
  TX: 0,
  DLL: 0,
  IER: 1,
  DLM: 1,
  IIR: 2,
  FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const;

/** Number of registers, and so the size of the I/O BAR of one port. */
export const UART_REG_COUNT = 8;

export const UART_IER = { RDI: 0x01, THRI: 0x02, RLSI: 0x04, MSI: 0x08 } as const;
export const UART_IIR = {
  NO_INT: 0x01,
  ID: 0x0e,
  MSI: 0x00,
  THRI: 0x02,
  RDI: 0x04,
  RLSI: 0x06,
  RX_TIMEOUT: 0x0c,
  FIFO_ENABLED: 0xc0,
} as const;
export const UART_FCR = {
  ENABLE_FIFO: 0x01,
  CLEAR_RCVR: 0x02,
  CLEAR_XMIT: 0x04,
  TRIGGER_MASK: 0xc0,
} as const;
export const UART_LCR = { DLAB: 0x80 } as const;
export const UART_MCR = { DTR: 0x01, RTS: 0x02, OUT1: 0x04, OUT2: 0x08, LOOP: 0x10 } as const;
export const UART_LSR = { DR: 0x01, OE: 0x02, PE: 0x04, FE: 0x08, BI: 0x10, THRE: 0x20, TEMT: 0x40, FIFOE: 0x80 } as const;
export const UART_MSR = {
  DCTS: 0x01,
  DDSR: 0x02,
  TERI: 0x04,
  DDCD: 0x08,
  CTS: 0x10,
  DSR: 0x20,
  RI: 0x40,
  DCD: 0x80,
} as const;

/** Names of the registers whose name does not depend on direction or DLAB, by offset. */
const REGISTER_NAMES: Record<number, string> = { 3: 'LCR', 4: 'MCR', 5: 'LSR', 6: 'MSR', 7: 'SCR' };

/** Depth of the FIFO when FIFOs are enabled. */
export const UART_FIFO_SIZE = 16;

/** Receive trigger levels selected by FCR bits 7:6. */
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

/**
 * What the modem inputs see outside loopback mode: the far end is always
 * ready (carrier, data set ready, clear to send), as mtty reports.
 */
const CABLE_INPUTS = UART_MSR.DCD | UART_MSR.DSR | UART_MSR.CTS;

/** Divisor after power-on: 9600 baud from the usual 1.8432 MHz clock. */
const RESET_DIVISOR = 12;

/**
 * Everything a UART holds, as migration saves it (the kernel's mtty saves
 * its registers, divisor, FIFO and trigger level the same way).
 */
export interface UartState {
  /** bytes waiting to be read, oldest first */
  fifo: Uint8Array;
  rbr: number;
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  divisor: number;
  fifoEnabled: boolean;
  /** receive trigger level: 1, 4, 8 or 14 */
  trigger: number;
  overrun: boolean;
  thrEmptyPending: boolean;
  /** MSR bits 7:4 and 3:0 */
  msrInputs: number;
  msrDeltas: number;
}

export interface Uart16550Options {
  /** Called each time the interrupt output goes high (true) or low (false). */
  onInterruptChange?: (asserted: boolean) => void;
}

export class Uart16550 {
  /** Called each time the interrupt output goes high (true) or low (false). */
  onInterruptChange: ((asserted: boolean) => void) | null;

  readonly #fifo = new Uint8Array(UART_FIFO_SIZE);
  #head = 0;
  #count = 0;
  /** RBR keeps the last byte read. */
  #rbr = 0;
  #ier = 0;
  #lcr = 0;
  #mcr = 0;
  #scr = 0;
  #divisor = RESET_DIVISOR;
  #fifoEnabled = false;
  #trigger = 1;
  #overrun = false;
  /** The THR-empty interrupt source, latched until IIR reports it or THR is written. */
  #thrEmptyPending = false;
  /** Modem input lines (MSR bits 7:4) and their change bits (3:0). */
  #msrInputs = CABLE_INPUTS;
  #msrDeltas = 0;
  #asserted = false;

  constructor(options: Uart16550Options = {}) {
    this.onInterruptChange = options.onInterruptChange ?? null;
  }

  /** Whether the interrupt output is high. */
  get interruptAsserted(): boolean {
    return this.#asserted;
  }

  /** Bytes waiting in the FIFO. */
  get pendingBytes(): number {
    return this.#count;
  }

  /**
   * The register at `offset` as serial_reg.h names it for a read or
   * (`write`) a write, with the divisor latch as LCR's DLAB bit selects now.
   */
  registerName(offset: number, write: boolean): string {
    const dlab = (this.#lcr & UART_LCR.DLAB) !== 0;
    switch (offset) {
      case UART_REG.RX:
        return dlab ? 'DLL' : write ? 'THR' : 'RBR';
      case UART_REG.IER:
        return dlab ? 'DLM' : 'IER';
      case UART_REG.IIR:
        return write ? 'FCR' : 'IIR';
      default:
        return REGISTER_NAMES[offset] ?? `reg${offset}`;
    }
  }

  /** Power-on state: FIFO empty and disabled, no interrupt enabled, 9600 8N1 divisor. */
  reset(): void {
    this.#head = 0;
    this.#count = 0;
    this.#rbr = 0;
    this.#ier = 0;
    this.#lcr = 0;
    this.#mcr = 0;
    this.#scr = 0;
    this.#divisor = RESET_DIVISOR;
    this.#fifoEnabled = false;
    this.#trigger = 1;
    this.#overrun = false;
    this.#thrEmptyPending = false;
    this.#msrInputs = CABLE_INPUTS;
    this.#msrDeltas = 0;
    this.#update();
  }

  /** Everything the UART holds, for migration. */
  saveState(): UartState {
    const fifo = new Uint8Array(this.#count);
    for (let i = 0; i < this.#count; i++) fifo[i] = this.#fifo[(this.#head + i) % UART_FIFO_SIZE]!;
    return {
      fifo,
      rbr: this.#rbr,
      ier: this.#ier,
      lcr: this.#lcr,
      mcr: this.#mcr,
      scr: this.#scr,
      divisor: this.#divisor,
      fifoEnabled: this.#fifoEnabled,
      trigger: this.#trigger,
      overrun: this.#overrun,
      thrEmptyPending: this.#thrEmptyPending,
      msrInputs: this.#msrInputs,
      msrDeltas: this.#msrDeltas,
    };
  }

  /**
   * EBADMSG unless `s` is a state a 16550A can be in: a FIFO no deeper than
   * its mode allows, a trigger level of the four, no bit a register lacks.
   */
  static checkState(s: UartState): void {
    const bad = (what: string): never => {
      throw new VfioError('EBADMSG', `a UART state with ${what} cannot be`);
    };
    if (s.fifo.length > (s.fifoEnabled ? UART_FIFO_SIZE : 1)) bad(`${s.fifo.length} bytes in a ${s.fifoEnabled ? 16 : 1}-byte FIFO`);
    if (!(TRIGGER_LEVELS as readonly number[]).includes(s.trigger)) bad(`trigger level ${s.trigger}`);
    for (const [name, v, mask] of [
      ['RBR', s.rbr, 0xff],
      ['IER', s.ier, 0x0f],
      ['LCR', s.lcr, 0xff],
      ['MCR', s.mcr, 0x1f],
      ['SCR', s.scr, 0xff],
      ['divisor', s.divisor, 0xffff],
      ['MSR inputs', s.msrInputs, 0xf0],
      ['MSR deltas', s.msrDeltas, 0x0f],
    ] as const) {
      if (!Number.isInteger(v) || (v & ~mask) !== 0) bad(`${name} 0x${v.toString(16)}`);
    }
  }

  /**
   * Becomes `s` (checked with checkState first), and tells its owner if the
   * interrupt output changed: a pending interrupt comes with the state.
   */
  restoreState(s: UartState): void {
    Uart16550.checkState(s);
    this.#fifo.fill(0);
    this.#fifo.set(s.fifo);
    this.#head = 0;
    this.#count = s.fifo.length;
    this.#rbr = s.rbr;
    this.#ier = s.ier;
    this.#lcr = s.lcr;
    this.#mcr = s.mcr;
    this.#scr = s.scr;
    this.#divisor = s.divisor;
    this.#fifoEnabled = s.fifoEnabled;
    this.#trigger = s.trigger;
    this.#overrun = s.overrun;
    this.#thrEmptyPending = s.thrEmptyPending;
    this.#msrInputs = s.msrInputs;
    this.#msrDeltas = s.msrDeltas;
    this.#update();
  }

  /** Reads register `offset` (0..7), with the side effects the 16550A has. */
  read(offset: number): number {
    checkOffset(offset);
    const dlab = (this.#lcr & UART_LCR.DLAB) !== 0;
    switch (offset) {
      case UART_REG.RX:
        return dlab ? this.#divisor & 0xff : this.#readRbr();
      case UART_REG.IER:
        return dlab ? this.#divisor >>> 8 : this.#ier;
      case UART_REG.IIR:
        return this.#readIir();
      case UART_REG.LCR:
        return this.#lcr;
      case UART_REG.MCR:
        return this.#mcr;
      case UART_REG.LSR:
        return this.#readLsr();
      case UART_REG.MSR:
        return this.#readMsr();
      default:
        return this.#scr;
    }
  }

  /** Writes `value` (one byte) to register `offset` (0..7). */
  write(offset: number, value: number): void {
    checkOffset(offset);
    const v = value & 0xff;
    const dlab = (this.#lcr & UART_LCR.DLAB) !== 0;
    switch (offset) {
      case UART_REG.TX:
        if (dlab) this.#divisor = (this.#divisor & 0xff00) | v;
        else this.#writeThr(v);
        break;
      case UART_REG.IER:
        if (dlab) this.#divisor = (this.#divisor & 0x00ff) | (v << 8);
        else this.#writeIer(v);
        break;
      case UART_REG.FCR:
        this.#writeFcr(v);
        break;
      case UART_REG.LCR:
        this.#lcr = v;
        break;
      case UART_REG.MCR:
        // Bits 7:5 do not exist on the 16550A.
        this.#mcr = v & 0x1f;
        this.#updateModemInputs();
        break;
      case UART_REG.LSR:
      case UART_REG.MSR:
        // Status registers: writes are for factory test only and change nothing here.
        break;
      default:
        this.#scr = v;
    }
    this.#update();
  }

  // ---- registers -----------------------------------------------------------

  #readRbr(): number {
    if (this.#count > 0) {
      this.#rbr = this.#fifo[this.#head]!;
      this.#head = (this.#head + 1) % UART_FIFO_SIZE;
      this.#count--;
      if (this.#count === 0) this.#thrBecameEmpty();
      this.#update();
    }
    return this.#rbr;
  }

  #writeThr(v: number): void {
    const capacity = this.#fifoEnabled ? UART_FIFO_SIZE : 1;
    if (this.#count < capacity) {
      this.#fifo[(this.#head + this.#count) % UART_FIFO_SIZE] = v;
      this.#count++;
    } else {
      // FIFO mode drops the new byte; 16450 mode overwrites the holding register.
      if (!this.#fifoEnabled) this.#fifo[this.#head] = v;
      this.#overrun = true;
    }
    this.#thrEmptyPending = false;
  }

  #writeIer(v: number): void {
    this.#ier = v & 0x0f;
    // Setting THRI while THR is empty raises the interrupt at once: the 8250
    // driver starts transmitting only after it sees this interrupt.
    this.#thrEmptyPending = (this.#ier & UART_IER.THRI) !== 0 && this.#count === 0;
  }

  #writeFcr(v: number): void {
    const enable = (v & UART_FCR.ENABLE_FIFO) !== 0;
    // Turning FIFOs on or off empties them; the other bits count only with FIFOs on.
    if (enable !== this.#fifoEnabled) this.#clearFifo();
    this.#fifoEnabled = enable;
    if (!enable) return;
    if (v & (UART_FCR.CLEAR_RCVR | UART_FCR.CLEAR_XMIT)) this.#clearFifo();
    this.#trigger = TRIGGER_LEVELS[(v & UART_FCR.TRIGGER_MASK) >>> 6]!;
  }

  #readIir(): number {
    const id = this.#pendingId();
    // Reading IIR acknowledges a THR-empty interrupt it reports.
    if (id === UART_IIR.THRI) {
      this.#thrEmptyPending = false;
      this.#update();
    }
    return id | (this.#fifoEnabled ? UART_IIR.FIFO_ENABLED : 0);
  }

  #readLsr(): number {
    let lsr = 0;
    if (this.#count > 0) lsr |= UART_LSR.DR;
    else lsr |= UART_LSR.THRE | UART_LSR.TEMT;
    if (this.#overrun) lsr |= UART_LSR.OE;
    // Error bits clear on read.
    this.#overrun = false;
    this.#update();
    return lsr;
  }

  #readMsr(): number {
    const msr = this.#msrInputs | this.#msrDeltas;
    this.#msrDeltas = 0;
    this.#update();
    return msr;
  }

  // ---- state helpers ---------------------------------------------------------

  #clearFifo(): void {
    const had = this.#count > 0;
    this.#head = 0;
    this.#count = 0;
    if (had) this.#thrBecameEmpty();
  }

  #thrBecameEmpty(): void {
    if (this.#ier & UART_IER.THRI) this.#thrEmptyPending = true;
  }

  /** In loopback the outputs drive the inputs: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD. */
  #updateModemInputs(): void {
    const m = this.#mcr;
    const inputs =
      m & UART_MCR.LOOP
        ? (m & UART_MCR.DTR ? UART_MSR.DSR : 0) |
          (m & UART_MCR.RTS ? UART_MSR.CTS : 0) |
          (m & UART_MCR.OUT1 ? UART_MSR.RI : 0) |
          (m & UART_MCR.OUT2 ? UART_MSR.DCD : 0)
        : CABLE_INPUTS;
    const changed = inputs ^ this.#msrInputs;
    if (changed & UART_MSR.CTS) this.#msrDeltas |= UART_MSR.DCTS;
    if (changed & UART_MSR.DSR) this.#msrDeltas |= UART_MSR.DDSR;
    if (changed & UART_MSR.DCD) this.#msrDeltas |= UART_MSR.DDCD;
    // Ring indicator reports only its trailing edge.
    if (this.#msrInputs & UART_MSR.RI && !(inputs & UART_MSR.RI)) this.#msrDeltas |= UART_MSR.TERI;
    this.#msrInputs = inputs;
  }

  /** The IIR interrupt ID of the highest-priority pending source. */
  #pendingId(): number {
    const ier = this.#ier;
    if (ier & UART_IER.RLSI && this.#overrun) return UART_IIR.RLSI;
    if (ier & UART_IER.RDI && this.#count > 0) {
      return this.#fifoEnabled && this.#count < this.#trigger ? UART_IIR.RX_TIMEOUT : UART_IIR.RDI;
    }
    if (ier & UART_IER.THRI && this.#thrEmptyPending) return UART_IIR.THRI;
    if (ier & UART_IER.MSI && this.#msrDeltas) return UART_IIR.MSI;
    return UART_IIR.NO_INT;
  }

  #update(): void {
    const asserted = this.#pendingId() !== UART_IIR.NO_INT;
    if (asserted === this.#asserted) return;
    this.#asserted = asserted;
    this.onInterruptChange?.(asserted);
  }
}

function checkOffset(offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset >= UART_REG_COUNT) {
    throw new VfioError('EINVAL', `UART register offset ${offset} is outside 0..7`);
  }
}
