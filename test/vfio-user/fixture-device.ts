/**
 * The device the transport tests serve: a small PCI-shaped VfioDevice that
 * records what reaches it and keeps the notifiers it is given (as vfio-pci
 * does), so tests can prove interrupts, REQ and DMA end to end before the
 * PCI library is there.
 *
 * Regions: BAR0 (4 KiB of registers: plain memory, except the doorbells
 * below), BAR2 (64 KiB of shared memory, mmap-able in two sparse areas),
 * CONFIG (256 bytes, a type capability). IRQs: INTx (1, maskable), MSI (4),
 * MSI-X (8), ERR (1), REQ (1).
 *
 * BAR0 doorbells (8-byte little-endian writes):
 * - DOORBELL_DMA_WRITE: writes BAR0 [0x200, 0x200+len) to client memory at
 *   the IOVA and length held in registers 0x10 / 0x18 (awaits the DMA)
 * - DOORBELL_DMA_READ: reads client memory at 0x10 / 0x18 into BAR0 0x200
 * - DOORBELL_IRQ: signals MSI-X vector `value`
 */
import {
  DeviceFlags,
  IrqInfoFlags,
  MigrationFlags,
  PciIrq,
  PciRegion,
  RegionFlags,
  VfioDevice,
  VfioError,
  type DeviceInfo,
  type DeviceOptions,
  type EventNotifier,
  type FeatureRequest,
  type IrqInfo,
  type RegionInfo,
  type RegionMmap,
  type SetIrqsRequest,
} from '../../src/core/index.js';
import type { MigrationInfo } from '../../src/core/device-migration.js';
import { MappedMemory } from '../../src/native/index.js';

export const BAR0_SIZE = 4096;
export const BAR2_SIZE = 64 * 1024;
export const CONFIG_SIZE = 256;
export const DOORBELL_DMA_WRITE = 0x100;
export const DOORBELL_DMA_READ = 0x108;
export const DOORBELL_IRQ = 0x110;
export const REG_IOVA = 0x10;
export const REG_LEN = 0x18;
export const DMA_BUF = 0x200;

const IRQ_COUNTS = [1, 4, 8, 1, 1];

/** The feature number the fixture answers itself (beyond the kernel's). */
export const DRIVER_FEATURE = 0x100;

export interface FixtureOptions extends DeviceOptions {
  /** every op answers through a promise (exercises the connection's queue) */
  asyncOps?: boolean;
  /** with asyncOps: answer after this many ms instead of at the next turn of the loop */
  delayMs?: number;
  /** open_device fails with this errno */
  failOpen?: 'EIO' | 'EBUSY';
  /** BAR2's size (default 64 KiB) */
  bar2Size?: number;
}

export class FixtureDevice extends VfioDevice {
  readonly bar0 = new Uint8Array(BAR0_SIZE);
  readonly config = new Uint8Array(CONFIG_SIZE);
  readonly bar2: MappedMemory;
  /** trigger notifiers by IRQ index, then sub-index */
  readonly triggers: (EventNotifier | null)[][] = IRQ_COUNTS.map((n) => new Array<EventNotifier | null>(n).fill(null));
  readonly calls: string[] = [];
  readonly setIrqsLog: SetIrqsRequest[] = [];
  /** the data of each plain region write, as the device saw it when it ran */
  readonly writeLog: Uint8Array[] = [];
  opens = 0;
  closes = 0;
  resets = 0;
  requests: number[] = [];
  /** migration stream out, and what came in */
  migrationOut = new Uint8Array(0);
  readonly migrationIn: Uint8Array[] = [];
  asyncOps: boolean;
  delayMs: number;
  readonly #failOpen: 'EIO' | 'EBUSY' | undefined;

  constructor(options: FixtureOptions) {
    super(options);
    this.asyncOps = options.asyncOps ?? false;
    this.delayMs = options.delayMs ?? 0;
    this.#failOpen = options.failOpen;
    this.bar2 = MappedMemory.create(`fixture-${options.name}`, options.bar2Size ?? BAR2_SIZE);
  }

  #answer<T>(op: string, fn: () => T): T | Promise<T> {
    this.calls.push(op);
    if (!this.asyncOps) return fn();
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      };
      if (this.delayMs > 0) setTimeout(run, this.delayMs);
      else setImmediate(run);
    });
  }

  override openDevice(): void {
    this.calls.push('open');
    if (this.#failOpen) throw new VfioError(this.#failOpen, 'open_device refused on purpose');
    this.opens++;
  }

  override closeDevice(): void {
    this.calls.push('close');
    this.closes++;
    for (const row of this.triggers) row.fill(null);
  }

  override release(): void {
    this.bar2.close();
  }

  override getInfo(): DeviceInfo {
    return { flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: PciRegion.NUM, numIrqs: PciIrq.NUM };
  }

  override getRegionInfo(index: number): RegionInfo {
    switch (index) {
      case PciRegion.BAR0:
        return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: BAR0_SIZE };
      case PciRegion.BAR2:
        return {
          index,
          flags: RegionFlags.READ | RegionFlags.WRITE | RegionFlags.MMAP,
          size: this.bar2.bytes.length,
          sparseMmap: [
            { offset: 0, size: 4096 },
            { offset: 8192, size: 8192 },
          ],
        };
      case PciRegion.CONFIG:
        return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: CONFIG_SIZE, type: { type: 0x80000000, subtype: 7 } };
      default:
        if (index < PciRegion.NUM) return { index, flags: 0, size: 0 };
        throw new VfioError('EINVAL', `no region ${index}`);
    }
  }

  override mmap(index: number): RegionMmap {
    if (index !== PciRegion.BAR2) throw new VfioError('EINVAL', `region ${index} cannot be mmapped`);
    return { fd: this.bar2.fd, offset: 0 };
  }

  override getIrqInfo(index: number): IrqInfo {
    const count = IRQ_COUNTS[index];
    if (count === undefined) throw new VfioError('EINVAL', `no irq index ${index}`);
    const flags = IrqInfoFlags.EVENTFD | (index === PciIrq.INTX ? IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED : IrqInfoFlags.NORESIZE);
    return { index, flags, count };
  }

  override setIrqs(request: SetIrqsRequest): void | Promise<void> {
    return this.#answer('setIrqs', () => {
      this.setIrqsLog.push(request);
      if (request.action !== 'trigger') return;
      const row = this.triggers[request.index]!;
      if (request.data === 'eventfd') {
        request.values.forEach((n, i) => (row[request.start + i] = n));
      } else if (request.data === 'none' && request.count === 0) {
        row.fill(null);
      } else {
        for (let i = 0; i < request.count; i++) {
          if (request.data === 'none' || request.values[i]) row[request.start + i]?.signal();
        }
      }
    });
  }

  /** A takeover: the triggers another process's device had, attached as they were (SET_IRQS has no side effect here to skip). */
  override adoptIrqs(request: SetIrqsRequest): void {
    this.calls.push('adoptIrqs');
    if (request.action !== 'trigger' || request.data !== 'eventfd') throw new VfioError('EINVAL', 'a takeover adopts trigger eventfds only');
    const row = this.triggers[request.index]!;
    request.values.forEach((n, i) => (row[request.start + i] = n));
  }

  /** Signals interrupt `sub` of `index` the way a device raises it. */
  trigger(index: number, sub: number): void {
    this.triggers[index]?.[sub]?.signal();
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void | Promise<void> {
    return this.#answer('read', () => {
      dest.set(this.#bytes(index).subarray(offset, offset + dest.length));
    });
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void | Promise<void> {
    if (index === PciRegion.BAR0 && offset >= DOORBELL_DMA_WRITE && offset < DOORBELL_IRQ + 8) return this.#doorbell(offset, src);
    return this.#answer('write', () => {
      if (this.writeLog.length < 1000) this.writeLog.push(src.slice());
      this.#bytes(index).set(src, offset);
    });
  }

  /** BAR2 is plain shared memory: large reads leave from it, large writes land in it. */
  override regionMemory(index: number, offset: number, count: number, write: boolean): Uint8Array | null {
    if (index !== PciRegion.BAR2 || offset + count > this.bar2.bytes.length) return null;
    this.calls.push(write ? 'memory-write' : 'memory-read');
    return this.bar2.bytes.subarray(offset, offset + count);
  }

  #bytes(index: number): Uint8Array {
    if (index === PciRegion.BAR0) return this.bar0;
    if (index === PciRegion.BAR2) return this.bar2.bytes;
    if (index === PciRegion.CONFIG) return this.config;
    throw new VfioError('EINVAL', `region ${index} is not implemented`);
  }

  async #doorbell(offset: number, src: Uint8Array): Promise<void> {
    this.calls.push(`doorbell 0x${offset.toString(16)}`);
    const view = new DataView(this.bar0.buffer);
    const iova = Number(view.getBigUint64(REG_IOVA, true));
    const len = Number(view.getBigUint64(REG_LEN, true));
    const dma = this.dma;
    if (offset === DOORBELL_IRQ) {
      this.trigger(PciIrq.MSIX, src[0]!);
      return;
    }
    if (dma === null) throw new VfioError('EIO', 'no client memory');
    if (offset === DOORBELL_DMA_WRITE) await dma.write(iova, this.bar0.slice(DMA_BUF, DMA_BUF + len));
    else await dma.read(iova, this.bar0.subarray(DMA_BUF, DMA_BUF + len));
  }

  override reset(): void | Promise<void> {
    return this.#answer('reset', () => {
      this.resets++;
      this.bar0.fill(0);
    });
  }

  override request(count: number): void {
    this.requests.push(count);
    this.trigger(PciIrq.REQ, 0);
  }

  /** A feature of its own (number DRIVER_FEATURE): GET answers 4 bytes, SET and PROBE succeed. */
  override deviceFeature(request: FeatureRequest): Uint8Array | void | Promise<Uint8Array | void> {
    return this.#answer('feature', () => {
      if (request.feature !== DRIVER_FEATURE) throw new VfioError('ENOTTY', `feature ${request.feature} is not supported`);
      if (request.op === 'get') return Uint8Array.of(1, 2, 3, 4);
    });
  }

  override migrationInfo(): MigrationInfo {
    return { flags: MigrationFlags.STOP_COPY, maxStreamBytes: 1 << 20 };
  }

  /** STOP_COPY hands out `migrationOut`. */
  override migrationSave(stage: 'precopy' | 'stop-copy'): Uint8Array | Promise<Uint8Array> {
    return this.#answer('migSave', () => (stage === 'stop-copy' ? this.migrationOut.slice() : new Uint8Array(0)));
  }

  /** A loaded stream lands in `migrationIn`. */
  override migrationLoad(stream: Uint8Array): void | Promise<void> {
    return this.#answer('migLoad', () => {
      this.migrationIn.push(stream.slice());
    });
  }
}
