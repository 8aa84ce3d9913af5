/**
 * The mtty device: a PCI serial card with one or two 16550A UARTs whose
 * transmitters loop back to their receivers (the kernel's samples/vfio-mdev
 * mtty, as a guest's own 8250 driver sees it).
 *
 * - 4348:3253, same subsystem IDs, revision 0x10, class 0x070002 (serial
 *   controller, 16550-compatible). Not the multiport subclass 0x02: Linux's
 *   8250_pci has no ID entry for this card and binds only through its class
 *   match, which takes serial controllers and silently skips multiport ones.
 * - Port 1 is I/O BAR0, port 2 I/O BAR1, eight bytes each, one register per
 *   byte. 8250_pci's guess for unknown cards gives one port per consecutive
 *   8-byte I/O BAR, so it finds both.
 * - One interrupt for the card: the OR of the UARTs' outputs, on INTA# or,
 *   once enabled, as MSI vector 0 on each rising edge.
 *
 * State lives in the UARTs and config space; a client that goes away takes
 * only its interrupt wiring with it (the library's closeDevice), so the
 * next client finds bytes and registers where they were. Reset returns both
 * UARTs to power-on.
 */

import type { DeviceOptions } from '../../core/device.js';
import { VfioError } from '../../base/errors.js';
import { MigrationFlags } from '../../base/uapi.js';
import { FieldReader, FieldWriter, type MigStreamWriter } from '../../core/migration-stream.js';
import { VfioPciDevice, type PciMigrationSpec } from '../../pci/pci-device.js';
import { UART_FIFO_SIZE, UART_REG_COUNT, Uart16550, type UartState } from './uart.js';

/** The card's identity in config space. */
const MTTY_PCI = {
  VENDOR_ID: 0x4348,
  DEVICE_ID: 0x3253,
  REVISION: 0x10,
  /** base class 0x07 communication, subclass 0x00 serial, prog-if 0x02 16550 */
  CLASS_CODE: 0x070002,
} as const;

/** Ports a card may have: mtty-1 and mtty-2. */
export type MttyPortCount = 1 | 2;

/** The ports of one mtty card. */
export interface MttyDeviceOptions extends DeviceOptions {
  ports: MttyPortCount;
  /** Called once when the device is released (gives its ports back to a pool). */
  onRelease?: () => void;
}

/** One mtty card: one UART per I/O BAR, one interrupt for the card. */
export class MttyDevice extends VfioPciDevice {
  /** Port k is served on BAR k. */
  readonly uarts: readonly Uart16550[];
  /** While resetFunction runs: the line is settled once, after every port is reset. */
  #resetting = false;

  constructor(options: MttyDeviceOptions) {
    const { ports, ...device } = options;
    if (ports !== 1 && ports !== 2) throw new VfioError('EINVAL', `an mtty card has 1 or 2 ports, not ${String(ports)}`);
    const bar = { kind: 'io', size: UART_REG_COUNT } as const;
    super({
      ...device,
      header: {
        vendorId: MTTY_PCI.VENDOR_ID,
        deviceId: MTTY_PCI.DEVICE_ID,
        subsystemVendorId: MTTY_PCI.VENDOR_ID,
        subsystemId: MTTY_PCI.DEVICE_ID,
        revision: MTTY_PCI.REVISION,
        classCode: MTTY_PCI.CLASS_CODE,
        interruptPin: 1,
      },
      bars: ports === 2 ? [bar, bar] : [bar],
      capabilities: { msi: { vectors: 1 } },
    });
    this.uarts = Array.from({ length: ports }, () => new Uart16550({ onInterruptChange: () => this.#updateLine() }));
  }

  /** Ports on the card: 1 for mtty-1, 2 for mtty-2. */
  get ports(): MttyPortCount {
    return this.uarts.length as MttyPortCount;
  }

  // Each byte of an access is one register access, in address order, as
  // the byte enables of a wider I/O cycle would make it.
  protected override barRead(bar: number, offset: number, dest: Uint8Array): void {
    const uart = this.uarts[bar]!;
    for (let i = 0; i < dest.length; i++) dest[i] = uart.read(offset + i);
  }

  protected override barWrite(bar: number, offset: number, src: Uint8Array): void {
    const uart = this.uarts[bar]!;
    for (let i = 0; i < src.length; i++) uart.write(offset + i, src[i]!);
  }

  /** `port0 LCR`: the port, then each register the access touches. */
  protected override barRegisterName(bar: number, offset: number, size: number, write: boolean): string | undefined {
    const uart = this.uarts[bar];
    if (uart === undefined || offset >= UART_REG_COUNT) return undefined;
    const names: string[] = [];
    for (let i = 0; i < size && offset + i < UART_REG_COUNT; i++) names.push(uart.registerName(offset + i, write));
    return `port${bar} ${names.join(',')}`;
  }

  // ---- migration: STOP_COPY, P2P and PRE_COPY, as the kernel's mtty ---------
  //
  // PRE_COPY sends the header (kind, version, port count) while the card
  // runs; STOP_COPY the function's state and every UART's registers,
  // divisor, FIFO and trigger level. A stream of another kind, version or
  // port count is refused before anything changes; a loaded UART that
  // asserts its interrupt raises it once the card runs again.

  protected override migrationSpec(): PciMigrationSpec {
    return {
      kind: 'mtty',
      major: MTTY_STREAM.MAJOR,
      minor: MTTY_STREAM.MINOR,
      params: new FieldWriter().u32(this.uarts.length).take(),
      tags: [MTTY_STREAM.UARTS],
      flags: MigrationFlags.STOP_COPY | MigrationFlags.P2P | MigrationFlags.PRE_COPY,
      maxStreamBytes: MTTY_STREAM.MAX_BYTES,
    };
  }

  protected override saveMigrationRecords(w: MigStreamWriter): void {
    const f = new FieldWriter().u8(this.uarts.length);
    for (const uart of this.uarts) writeUart(f, uart.saveState());
    w.record(MTTY_STREAM.UARTS, f.take());
  }

  protected override loadMigrationRecords(records: ReadonlyMap<number, Uint8Array>): () => void {
    const payload = records.get(MTTY_STREAM.UARTS);
    if (payload === undefined) throw new VfioError('EBADMSG', 'the mtty migration stream has no UART record');
    const r = new FieldReader(payload, 'mtty UART');
    const n = r.u8();
    if (n !== this.uarts.length) throw new VfioError('EINVAL', `the mtty migration stream holds ${n} UARTs, this card has ${this.uarts.length}`);
    const states = this.uarts.map(() => readUart(r));
    r.done();
    for (const s of states) Uart16550.checkState(s);
    return () => {
      this.#resetting = true; // one settle of the line for the whole card, as at reset
      try {
        this.uarts.forEach((uart, i) => uart.restoreState(states[i]!));
      } finally {
        this.#resetting = false;
      }
      this.#updateLine();
    };
  }

  protected override resetFunction(): void {
    // The library has dropped the line already. Were it to follow each port
    // as it resets, a port not yet reset and still asserting would raise it
    // again: a spurious edge (an MSI, or an INTx) sent in the middle of reset.
    this.#resetting = true;
    try {
      for (const uart of this.uarts) uart.reset();
    } finally {
      this.#resetting = false;
    }
    this.#updateLine();
  }

  #updateLine(): void {
    if (this.#resetting) return;
    this.irqs.setLevel(this.uarts.some((u) => u.interruptAsserted));
  }
}

/** The mtty migration stream: version, record tag, size bound. */
export const MTTY_STREAM = {
  MAJOR: 1,
  MINOR: 0,
  /** record: u8 port count, then each UART (see writeUart) */
  UARTS: 16,
  /** far above the real size (config space + two UARTs, under 1 KiB) */
  MAX_BYTES: 64 * 1024,
} as const;

const UART_FLAG = { FIFO_ENABLED: 1, OVERRUN: 2, THR_EMPTY_PENDING: 4 } as const;

/** u8 FIFO count, 16 FIFO bytes, RBR IER LCR MCR SCR, u16 divisor, u8 flags, trigger, MSR inputs, deltas. */
function writeUart(f: FieldWriter, s: UartState): void {
  const fifo = new Uint8Array(UART_FIFO_SIZE);
  fifo.set(s.fifo);
  f.u8(s.fifo.length).bytes(fifo).u8(s.rbr).u8(s.ier).u8(s.lcr).u8(s.mcr).u8(s.scr).u16(s.divisor);
  f.u8((s.fifoEnabled ? UART_FLAG.FIFO_ENABLED : 0) | (s.overrun ? UART_FLAG.OVERRUN : 0) | (s.thrEmptyPending ? UART_FLAG.THR_EMPTY_PENDING : 0));
  f.u8(s.trigger).u8(s.msrInputs).u8(s.msrDeltas);
}

function readUart(r: FieldReader): UartState {
  const count = r.u8();
  const fifo = r.bytes(UART_FIFO_SIZE);
  if (count > UART_FIFO_SIZE) throw new VfioError('EBADMSG', `a UART record holds ${count} FIFO bytes, a FIFO has ${UART_FIFO_SIZE}`);
  const [rbr, ier, lcr, mcr, scr] = [r.u8(), r.u8(), r.u8(), r.u8(), r.u8()];
  const divisor = r.u16();
  const flags = r.u8();
  if ((flags & ~7) !== 0) throw new VfioError('EBADMSG', `a UART record has unknown flags 0x${flags.toString(16)}`);
  return {
    fifo: fifo.slice(0, count),
    rbr,
    ier,
    lcr,
    mcr,
    scr,
    divisor,
    fifoEnabled: (flags & UART_FLAG.FIFO_ENABLED) !== 0,
    overrun: (flags & UART_FLAG.OVERRUN) !== 0,
    thrEmptyPending: (flags & UART_FLAG.THR_EMPTY_PENDING) !== 0,
    trigger: r.u8(),
    msrInputs: r.u8(),
    msrDeltas: r.u8(),
  };
}

/** A plain mtty card, for serving without the mdev bus (tests, e2e). */
export function createMttyDevice(options: MttyDeviceOptions): MttyDevice {
  return new MttyDevice(options);
}
