/**
 * A guest's virtio-blk driver, as small as it can be, for tests: it plays
 * the guest through the vfio-user client library over a real socket. Its
 * memory is client memory mapped for DMA (through an fd, or reached by
 * DMA messages), its rings and buffers laid out at fixed places; it
 * negotiates, sets up queue 0, and submits requests by writing
 * descriptors, bumping the available index and posting a write to the
 * notification area, as Linux's virtio_blk does through QEMU.
 */
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { VIRTIO_BAR } from '../../src/drivers/virtio/virtio-pci-device.js';
import { COMMON_CFG, VIRTIO_F, VIRTIO_STATUS, VIRTQ_DESC } from '../../src/drivers/virtio/spec.js';
import { VIRTIO_BLK_T } from '../../src/drivers/virtio-blk/index.js';
import type { InterruptSet, VfioUserClient } from '../../src/vfio-user/index.js';
import { until } from '../support/until.js';

/** Where things are in guest memory, as offsets from its base. */
export const LAYOUT = {
  DESC: 0x0000,
  AVAIL: 0x1000,
  USED: 0x2000,
  /** Indirect tables, 256 bytes (16 descriptors) per slot. */
  INDIRECT: 0x3000,
  /** Request headers, 16 bytes per slot. */
  HEADER: 0x8000,
  /** Status bytes, one per slot. */
  STATUS: 0x9000,
  /** Data, DATA_SLOT bytes per slot. */
  DATA: 0x10000,
  DATA_SLOT: 0x10000,
  SLOTS: 64,
  /** Guest memory needed: DATA + SLOTS * DATA_SLOT. */
  SIZE: 0x10000 + 64 * 0x10000,
} as const;

export const QUEUE_SIZE = 256;
const B0 = PciRegion.BAR0;

export interface InitOptions {
  /** Feature bits the driver accepts of those offered; default all. */
  accept?: (offered: bigint) => bigint;
  /** Interrupts by MSI-X (default) or INTx. */
  irq?: 'msix' | 'intx';
  /** Queue size written (default the offered size). */
  queueSize?: number;
}

export interface Request {
  type: number;
  sector?: number;
  /** WRITE: the data. */
  data?: Uint8Array;
  /** READ and GET_ID: bytes to read. */
  readLength?: number;
  /** Put the chain in an indirect table. */
  indirect?: boolean;
  /** Split the data over buffers of this many bytes (default one buffer). */
  segment?: number;
  /** Where the data goes in guest memory (an offset; default the slot's own DATA_SLOT bytes). */
  buffer?: number;
}

export interface Completion {
  status: number;
  /** What the device wrote into the data buffers (READ, GET_ID). */
  data: Uint8Array;
  /** The used element's len. */
  len: number;
}

export class VirtioGuest {
  irqs: InterruptSet | null = null;
  offered = 0n;
  accepted = 0n;
  #availIdx = 0;
  #usedSeen = 0;
  #next = 0;
  readonly #view: DataView;

  constructor(
    readonly c: VfioUserClient,
    /** Guest memory as the guest sees it. */
    readonly mem: Uint8Array,
    /** Its guest-physical (IOVA) base. */
    readonly base: number,
  ) {
    this.#view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  }

  // ---- registers ------------------------------------------------------------------

  async read(offset: number, size: 1 | 2 | 4): Promise<number> {
    const b = await this.c.regionRead(B0, offset, size);
    const v = new DataView(b.buffer, b.byteOffset, size);
    return size === 1 ? v.getUint8(0) : size === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }

  async write(offset: number, size: 1 | 2 | 4, value: number, posted = false): Promise<void> {
    const b = new Uint8Array(size);
    const v = new DataView(b.buffer);
    if (size === 1) v.setUint8(0, value);
    else if (size === 2) v.setUint16(0, value, true);
    else v.setUint32(0, value, true);
    await this.c.regionWrite(B0, offset, b, { posted });
  }

  /** Writes a 64-bit register as Linux does: two 32-bit halves, low first. */
  async write64(offset: number, value: number): Promise<void> {
    await this.write(offset, 4, value % 0x1_0000_0000);
    await this.write(offset + 4, 4, Math.floor(value / 0x1_0000_0000));
  }

  status(): Promise<number> {
    return this.read(VIRTIO_BAR.COMMON + COMMON_CFG.DEVICE_STATUS, 1);
  }

  setStatus(value: number): Promise<void> {
    return this.write(VIRTIO_BAR.COMMON + COMMON_CFG.DEVICE_STATUS, 1, value);
  }

  async deviceFeatures(): Promise<bigint> {
    let f = 0n;
    for (const sel of [0, 1]) {
      await this.write(VIRTIO_BAR.COMMON + COMMON_CFG.DEVICE_FEATURE_SELECT, 4, sel);
      f |= BigInt(await this.read(VIRTIO_BAR.COMMON + COMMON_CFG.DEVICE_FEATURE, 4)) << BigInt(32 * sel);
    }
    return f;
  }

  async setDriverFeatures(f: bigint): Promise<void> {
    for (const sel of [0, 1]) {
      await this.write(VIRTIO_BAR.COMMON + COMMON_CFG.DRIVER_FEATURE_SELECT, 4, sel);
      await this.write(VIRTIO_BAR.COMMON + COMMON_CFG.DRIVER_FEATURE, 4, Number((f >> BigInt(32 * sel)) & 0xffffffffn));
    }
  }

  /** The virtio initialisation sequence (3.1.1), queue 0 set up; returns the status read back. */
  async init(o: InitOptions = {}): Promise<number> {
    const C = VIRTIO_BAR.COMMON;
    await this.setStatus(0);
    await until(() => true);
    await this.setStatus(VIRTIO_STATUS.ACKNOWLEDGE);
    await this.setStatus(VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER);
    this.offered = await this.deviceFeatures();
    this.accepted = o.accept ? o.accept(this.offered) : this.offered;
    await this.setDriverFeatures(this.accepted);
    const S = VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER;
    await this.setStatus(S | VIRTIO_STATUS.FEATURES_OK);
    if (!((await this.status()) & VIRTIO_STATUS.FEATURES_OK)) return this.status();
    this.mem.fill(0, 0, LAYOUT.HEADER);
    this.#availIdx = 0;
    this.#usedSeen = 0;
    this.#next = 0;
    if ((o.irq ?? 'msix') === 'msix') {
      this.irqs?.close();
      this.irqs = await this.c.setIrqEventfds(PciIrq.MSIX, 0, 2);
      await this.write(C + COMMON_CFG.MSIX_CONFIG, 2, 0);
    } else {
      this.irqs?.close();
      this.irqs = await this.c.setIrqEventfds(PciIrq.INTX, 0, 1);
    }
    await this.write(C + COMMON_CFG.QUEUE_SELECT, 2, 0);
    if (o.queueSize !== undefined) await this.write(C + COMMON_CFG.QUEUE_SIZE, 2, o.queueSize);
    if ((o.irq ?? 'msix') === 'msix') await this.write(C + COMMON_CFG.QUEUE_MSIX_VECTOR, 2, 1);
    await this.write64(C + COMMON_CFG.QUEUE_DESC, this.base + LAYOUT.DESC);
    await this.write64(C + COMMON_CFG.QUEUE_DRIVER, this.base + LAYOUT.AVAIL);
    await this.write64(C + COMMON_CFG.QUEUE_DEVICE, this.base + LAYOUT.USED);
    await this.write(C + COMMON_CFG.QUEUE_ENABLE, 2, 1);
    await this.setStatus(S | VIRTIO_STATUS.FEATURES_OK | VIRTIO_STATUS.DRIVER_OK);
    return this.status();
  }

  get eventIdx(): boolean {
    return (this.accepted & (1n << BigInt(VIRTIO_F.RING_EVENT_IDX))) !== 0n;
  }

  // ---- rings -------------------------------------------------------------------------

  /** Writes descriptor `i` of the table at `table` (an offset in guest memory). */
  desc(table: number, i: number, addr: number, len: number, flags: number, next = 0): void {
    const at = table + VIRTQ_DESC.SIZE * i;
    this.#view.setBigUint64(at, BigInt(addr), true);
    this.#view.setUint32(at + 8, len, true);
    this.#view.setUint16(at + 12, flags, true);
    this.#view.setUint16(at + 14, next, true);
  }

  /** Makes `head` available and notifies (a posted write, as QEMU sends it). */
  async publish(head: number, notify = true): Promise<void> {
    this.#view.setUint16(LAYOUT.AVAIL + 4 + 2 * (this.#availIdx % QUEUE_SIZE), head, true);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.#view.setUint16(LAYOUT.AVAIL + 2, this.#availIdx, true);
    // With EVENT_IDX, ask for an interrupt on every completion.
    if (this.eventIdx) this.#view.setUint16(LAYOUT.AVAIL + 4 + 2 * QUEUE_SIZE, this.#usedSeen & 0xffff, true);
    if (notify) await this.kick();
  }

  kick(): Promise<void> {
    return this.write(VIRTIO_BAR.NOTIFY, 2, 0, true);
  }

  get usedIdx(): number {
    return this.#view.getUint16(LAYOUT.USED + 2, true);
  }

  /** The used element at ring position `n`. */
  used(n: number): { id: number; len: number } {
    const at = LAYOUT.USED + 4 + 8 * (n % QUEUE_SIZE);
    return { id: this.#view.getUint32(at, true), len: this.#view.getUint32(at + 4, true) };
  }

  /** Writes a request into a slot's buffers and descriptors; returns the head and how to read its result. */
  prepare(r: Request): { head: number; slot: number } {
    const slot = this.#next++ % LAYOUT.SLOTS;
    const header = LAYOUT.HEADER + 16 * slot;
    this.#view.setUint32(header, r.type, true);
    this.#view.setUint32(header + 4, 0, true);
    this.#view.setBigUint64(header + 8, BigInt(r.sector ?? 0), true);
    const status = LAYOUT.STATUS + slot;
    this.mem[status] = 0xff;
    const data = r.buffer ?? LAYOUT.DATA + LAYOUT.DATA_SLOT * slot;
    const dataLen = r.data?.length ?? r.readLength ?? 0;
    if (r.data) this.mem.set(r.data, data);
    else this.mem.fill(0xee, data, data + dataLen);
    const bufs: Array<[number, number, boolean]> = [[this.base + header, 16, false]];
    const seg = r.segment ?? (dataLen || 1);
    for (let off = 0; off < dataLen; off += seg) bufs.push([this.base + data + off, Math.min(seg, dataLen - off), r.type !== VIRTIO_BLK_T.OUT]);
    bufs.push([this.base + status, 1, true]);
    const head = (slot * 4) % QUEUE_SIZE;
    if (r.indirect) {
      const table = LAYOUT.INDIRECT + 256 * slot;
      bufs.forEach(([addr, len, w], i) =>
        this.desc(table, i, addr, len, (w ? VIRTQ_DESC.F_WRITE : 0) | (i < bufs.length - 1 ? VIRTQ_DESC.F_NEXT : 0), i + 1),
      );
      this.desc(LAYOUT.DESC, head, this.base + table, 16 * bufs.length, VIRTQ_DESC.F_INDIRECT);
    } else {
      if (bufs.length > 4) throw new Error('a direct chain of this guest has at most 4 descriptors');
      bufs.forEach(([addr, len, w], i) =>
        this.desc(LAYOUT.DESC, head + i, addr, len, (w ? VIRTQ_DESC.F_WRITE : 0) | (i < bufs.length - 1 ? VIRTQ_DESC.F_NEXT : 0), head + i + 1),
      );
    }
    return { head, slot };
  }

  /** Submits requests together (one kick) and waits for all of them. */
  async submit(requests: Request[], timeoutMs = 5000): Promise<Completion[]> {
    const prepared = requests.map((r) => ({ r, ...this.prepare(r) }));
    const start = this.#usedSeen;
    for (let i = 0; i < prepared.length; i++) await this.publish(prepared[i]!.head, i === prepared.length - 1);
    const want = (start + prepared.length) & 0xffff;
    await until(() => this.usedIdx === want, `used index ${want} (at ${this.usedIdx})`, timeoutMs);
    const lens = new Map<number, number>();
    for (let n = start; n !== want; n = (n + 1) & 0xffff) lens.set(this.used(n).id, this.used(n).len);
    this.#usedSeen = want;
    return prepared.map(({ r, head, slot }) => {
      const data = LAYOUT.DATA + LAYOUT.DATA_SLOT * slot;
      const n = r.data ? 0 : (r.readLength ?? 0);
      return { status: this.mem[LAYOUT.STATUS + slot]!, data: this.mem.slice(data, data + n), len: lens.get(head) ?? -1 };
    });
  }

  async one(r: Request): Promise<Completion> {
    return (await this.submit([r]))[0]!;
  }

  close(): void {
    this.irqs?.close();
    this.irqs = null;
  }
}
