/**
 * The virtio 1.x PCI transport ("modern" virtio-pci, 4.1): a PCI function
 * whose vendor capabilities point into BAR0 at the common configuration,
 * the ISR status, the device-specific configuration and the notification
 * area, with MSI-X (one vector for configuration changes and one per
 * queue) in BAR2 and INTx as the fallback. A device type extends it with
 * its ID, features, configuration bytes and what serving one chain means
 * (serve); the transport negotiates features (VERSION_1 required), runs
 * the device status, the split virtqueues and their interrupts.
 *
 * BAR0 (16 KiB, 64-bit, not mappable: every access is trapped):
 *
 *     0x0000  common configuration  (virtio_pci_common_cfg)
 *     0x1000  ISR status            (read-to-clear)
 *     0x2000  device configuration
 *     0x3000  notifications         (queue n at 0x3000 + 4n)
 *
 * A write to the notification area (QEMU posts it) only schedules the
 * queue's runner: the runner pops chains and hands each to serve() without
 * waiting for it, so requests overlap; completions go back through the
 * used ring in batches. Guest memory is reached only through the client's
 * DMA access.
 *
 * Errors: whatever the driver got wrong in the rings, and any failed guest
 * memory access (a mapping gone, a client shrinking its memory), sets
 * DEVICE_NEEDS_RESET and raises the configuration interrupt; the device
 * then serves nothing until the driver resets it. Reset (status 0, a
 * function reset, the last close) retires the queues: a request still in
 * flight finishes against the backing but touches guest memory no more,
 * and device_status reads non-zero until none is in flight.
 */
import type { DeviceOptions } from '../../core/device.js';
import { VfioError } from '../../base/errors.js';
import { VfioPciDevice } from '../../pci/pci-device.js';
import { fieldsFrom, nameAccess } from '../../pci/register-names.js';
import type { DescriptorChain } from './descriptor-chain.js';
import {
  COMMON_CFG,
  featureBit,
  VIRTIO_F,
  VIRTIO_ISR,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP,
  VIRTIO_PCI_MODERN_DEVICE_BASE,
  VIRTIO_PCI_VENDOR,
  VIRTIO_STATUS,
  VIRTQ_MAX_SIZE,
} from './spec.js';
import { Virtqueue } from './virtqueue.js';

/** Where the transport's structures live in BAR0. */
export const VIRTIO_BAR = {
  INDEX: 0,
  SIZE: 0x4000,
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  /** Bytes between two queues' notification addresses. */
  NOTIFY_MULTIPLIER: 4,
  MSIX_BAR: 2,
  MSIX_BAR_SIZE: 0x1000,
  PBA_OFFSET: 0x800,
} as const;

const REGION_SIZE = 0x1000;

/** struct virtio_pci_common_cfg's fields as traces name them (`common QUEUE_DESC`). */
const COMMON_FIELDS = fieldsFrom(
  COMMON_CFG.DEVICE_FEATURE_SELECT,
  [
    ['DEVICE_FEATURE_SELECT', 4],
    ['DEVICE_FEATURE', 4],
    ['DRIVER_FEATURE_SELECT', 4],
    ['DRIVER_FEATURE', 4],
    ['MSIX_CONFIG', 2],
    ['NUM_QUEUES', 2],
    ['DEVICE_STATUS', 1],
    ['CONFIG_GENERATION', 1],
    ['QUEUE_SELECT', 2],
    ['QUEUE_SIZE', 2],
    ['QUEUE_MSIX_VECTOR', 2],
    ['QUEUE_ENABLE', 2],
    ['QUEUE_NOTIFY_OFF', 2],
    ['QUEUE_DESC', 8],
    ['QUEUE_DRIVER', 8],
    ['QUEUE_DEVICE', 8],
  ],
  'common ',
);

export interface VirtioPciDeviceOptions extends DeviceOptions {
  /** The virtio device ID (2 for a block device); the PCI device ID is 0x1040 + it. */
  virtioId: number;
  /** 24-bit PCI class code. */
  classCode: number;
  /** Device-specific feature bits offered (the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX). */
  features: bigint;
  /** Virtqueues, 1..64. */
  queues: number;
  /** Entries per queue offered (a power of two, up to 32768). */
  queueSize: number;
  /** Bytes of device-specific configuration (up to 4 KiB). */
  configSize: number;
  onRelease?: () => void;
}

/** What a device type answers for one chain: bytes it wrote into the chain's writable part. */
export type ServeResult = Promise<number>;

export abstract class VirtioPciDevice extends VfioPciDevice {
  readonly virtioId: number;
  /** Every feature offered, transport bits included. */
  readonly deviceFeatures: bigint;
  /** The device-specific configuration the driver reads; a device type fills it. */
  protected readonly deviceConfig: Uint8Array;

  #queues: Virtqueue[];
  readonly #queueSize: number;
  #status = 0;
  #driverFeatures = 0n;
  #deviceFeatureSelect = 0;
  #driverFeatureSelect = 0;
  #configVector = VIRTIO_MSI_NO_VECTOR;
  #queueSelect = 0;
  #isr = 0;
  #configGeneration = 0;
  /** Queues that were kicked while their runner was busy. */
  readonly #kicked = new Set<Virtqueue>();
  readonly #running = new Set<Virtqueue>();
  /** Queues retired by a reset while chains were still in flight on them. */
  #draining = new Set<Virtqueue>();
  #lastError: VfioError | null = null;

  constructor(options: VirtioPciDeviceOptions) {
    const { virtioId, classCode, features, queues, queueSize, configSize, ...device } = options;
    if (!Number.isInteger(queues) || queues < 1 || queues > 64) throw new VfioError('EINVAL', `a virtio device has 1..64 queues, not ${queues}`);
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > VIRTQ_MAX_SIZE || (queueSize & (queueSize - 1)) !== 0) {
      throw new VfioError('EINVAL', `a virtqueue size must be a power of two up to ${VIRTQ_MAX_SIZE}, not ${queueSize}`);
    }
    if (!Number.isInteger(configSize) || configSize < 0 || configSize > REGION_SIZE) {
      throw new VfioError('EINVAL', `virtio device configuration of ${configSize} bytes does not fit its 4 KiB`);
    }
    super({
      ...device,
      header: {
        vendorId: VIRTIO_PCI_VENDOR,
        deviceId: VIRTIO_PCI_MODERN_DEVICE_BASE + virtioId,
        subsystemVendorId: VIRTIO_PCI_VENDOR,
        subsystemId: 0x1100,
        // Revision 1 and up: a modern-only device (4.1.2.1).
        revision: 0x01,
        classCode,
        interruptPin: 1,
      },
      bars: [{ kind: 'mem64', size: VIRTIO_BAR.SIZE }, undefined, { kind: 'mem32', size: VIRTIO_BAR.MSIX_BAR_SIZE }],
      capabilities: {
        msix: {
          vectors: queues + 1,
          tableBar: VIRTIO_BAR.MSIX_BAR,
          tableOffset: 0,
          pbaBar: VIRTIO_BAR.MSIX_BAR,
          pbaOffset: VIRTIO_BAR.PBA_OFFSET,
        },
        vendor: [
          virtioCap(VIRTIO_PCI_CAP.COMMON_CFG, VIRTIO_BAR.COMMON, COMMON_CFG.SIZE),
          virtioCap(VIRTIO_PCI_CAP.NOTIFY_CFG, VIRTIO_BAR.NOTIFY, queues * VIRTIO_BAR.NOTIFY_MULTIPLIER, VIRTIO_BAR.NOTIFY_MULTIPLIER),
          virtioCap(VIRTIO_PCI_CAP.ISR_CFG, VIRTIO_BAR.ISR, 1),
          ...(configSize > 0 ? [virtioCap(VIRTIO_PCI_CAP.DEVICE_CFG, VIRTIO_BAR.DEVICE, configSize)] : []),
        ],
      },
    });
    this.virtioId = virtioId;
    this.deviceFeatures = features | featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.RING_INDIRECT_DESC) | featureBit(VIRTIO_F.RING_EVENT_IDX);
    this.deviceConfig = new Uint8Array(configSize);
    this.#queueSize = queueSize;
    this.#queues = this.#freshQueues(queues);
  }

  // ---- for device types -----------------------------------------------------

  /**
   * Serves one chain popped from `queue`; resolves with the bytes written
   * into its writable part. It runs outside the set lock, possibly after
   * a reset: check `queue.retired` before touching guest memory after an
   * await (DescriptorChain's accesses fail once the client is gone). A
   * rejection puts the device in NEEDS_RESET: report request failures in
   * the request's own status instead.
   */
  protected abstract serve(queue: Virtqueue, chain: DescriptorChain): ServeResult;

  /** The device type's part of a virtio reset (status 0, function reset, last close). */
  protected virtioReset(): void {}

  /** The features the driver accepted (valid once FEATURES_OK is set). */
  get driverFeatures(): bigint {
    return this.#driverFeatures;
  }

  /** device_status as the driver last set it, with NEEDS_RESET when set. */
  get status(): number {
    return this.#status;
  }

  /** Why the device last went to NEEDS_RESET; null since reset. */
  get lastError(): VfioError | null {
    return this.#lastError;
  }

  /** Chains in flight on every queue, retired ones included. */
  get inFlight(): number {
    let n = 0;
    for (const q of this.#queues) n += q.inFlight;
    for (const q of this.#draining) n += q.inFlight;
    return n;
  }

  /** The device configuration changed: the driver is told (generation bumped, config interrupt). */
  protected configChanged(): void {
    this.#configGeneration = (this.#configGeneration + 1) & 0xff;
    if (this.#status & VIRTIO_STATUS.DRIVER_OK) this.#interrupt(VIRTIO_ISR.CONFIG, this.#configVector);
  }

  // ---- BAR0 ---------------------------------------------------------------------

  protected override barRead(bar: number, offset: number, dest: Uint8Array): void {
    dest.fill(0);
    if (bar !== VIRTIO_BAR.INDEX) return; // the rest of the MSI-X BAR reads 0
    const region = offset & ~(REGION_SIZE - 1);
    const at = offset - region;
    if (at + dest.length > REGION_SIZE) return;
    switch (region) {
      case VIRTIO_BAR.COMMON:
        return this.#commonRead(at, dest);
      case VIRTIO_BAR.ISR:
        if (at === 0 && dest.length >= 1) dest[0] = this.#takeIsr();
        return;
      case VIRTIO_BAR.DEVICE:
        if (at < this.deviceConfig.length) dest.set(this.deviceConfig.subarray(at, Math.min(at + dest.length, this.deviceConfig.length)));
        return;
    }
  }

  protected override barWrite(bar: number, offset: number, src: Uint8Array): void {
    if (bar !== VIRTIO_BAR.INDEX) return;
    const region = offset & ~(REGION_SIZE - 1);
    const at = offset - region;
    if (at + src.length > REGION_SIZE) return;
    switch (region) {
      case VIRTIO_BAR.COMMON:
        return this.#commonWrite(at, src);
      case VIRTIO_BAR.DEVICE:
        return this.writeDeviceConfig(at, src);
      case VIRTIO_BAR.NOTIFY:
        return this.#notify(at);
    }
  }

  /** `common QUEUE_DESC`, `ISR`, `device+0x14`, `notify queue 0`: BAR0's structures, for traces. */
  protected override barRegisterName(bar: number, offset: number, size: number): string | undefined {
    if (bar !== VIRTIO_BAR.INDEX) return undefined;
    const region = offset & ~(REGION_SIZE - 1);
    const at = offset - region;
    switch (region) {
      case VIRTIO_BAR.COMMON:
        return nameAccess(COMMON_FIELDS, at, size);
      case VIRTIO_BAR.ISR:
        return at === 0 ? 'ISR' : undefined;
      case VIRTIO_BAR.DEVICE:
        return `device+0x${at.toString(16)}`;
      case VIRTIO_BAR.NOTIFY:
        return `notify queue ${Math.floor(at / VIRTIO_BAR.NOTIFY_MULTIPLIER)}`;
    }
    return undefined;
  }

  /** A driver write to the device configuration; ignored unless a device type has writable fields. */
  protected writeDeviceConfig(offset: number, src: Uint8Array): void {
    void offset;
    void src;
  }

  // ---- device lifecycle ---------------------------------------------------------

  protected override resetFunction(): void {
    this.#reset();
  }

  /** The client went away: its rings are in memory no one will map again. */
  override closeDevice(): void {
    this.#reset();
    super.closeDevice();
  }

  override release(): void {
    this.#retireAll();
    super.release();
  }

  // ---- common configuration ---------------------------------------------------------

  #commonRead(at: number, dest: Uint8Array): void {
    const cfg = new Uint8Array(COMMON_CFG.SIZE);
    const v = new DataView(cfg.buffer);
    const q = this.#queues[this.#queueSelect];
    v.setUint32(COMMON_CFG.DEVICE_FEATURE_SELECT, this.#deviceFeatureSelect, true);
    v.setUint32(COMMON_CFG.DEVICE_FEATURE, this.#deviceFeatureSelect < 2 ? word(this.deviceFeatures, this.#deviceFeatureSelect) : 0, true);
    v.setUint32(COMMON_CFG.DRIVER_FEATURE_SELECT, this.#driverFeatureSelect, true);
    v.setUint32(COMMON_CFG.DRIVER_FEATURE, this.#driverFeatureSelect < 2 ? word(this.#driverFeatures, this.#driverFeatureSelect) : 0, true);
    v.setUint16(COMMON_CFG.MSIX_CONFIG, this.#configVector, true);
    v.setUint16(COMMON_CFG.NUM_QUEUES, this.#queues.length, true);
    // After a reset, 0 only once nothing is in flight any more (the driver waits for it).
    v.setUint8(COMMON_CFG.DEVICE_STATUS, this.#status === 0 && this.#draining.size > 0 ? VIRTIO_STATUS.ACKNOWLEDGE : this.#status);
    v.setUint8(COMMON_CFG.CONFIG_GENERATION, this.#configGeneration);
    v.setUint16(COMMON_CFG.QUEUE_SELECT, this.#queueSelect, true);
    if (q) {
      v.setUint16(COMMON_CFG.QUEUE_SIZE, q.size, true);
      v.setUint16(COMMON_CFG.QUEUE_MSIX_VECTOR, q.msixVector, true);
      v.setUint16(COMMON_CFG.QUEUE_ENABLE, q.enabled ? 1 : 0, true);
      v.setUint16(COMMON_CFG.QUEUE_NOTIFY_OFF, q.index, true);
      v.setBigUint64(COMMON_CFG.QUEUE_DESC, q.desc, true);
      v.setBigUint64(COMMON_CFG.QUEUE_DRIVER, q.driver, true);
      v.setBigUint64(COMMON_CFG.QUEUE_DEVICE, q.device, true);
    }
    copyOut(cfg, at, dest);
  }

  #commonWrite(at: number, src: Uint8Array): void {
    if (at >= COMMON_CFG.SIZE) return;
    // Merge the write into the current values, then apply each field it touched.
    const cfg = new Uint8Array(COMMON_CFG.SIZE);
    this.#commonRead(0, cfg);
    cfg.set(src.subarray(0, COMMON_CFG.SIZE - at), at);
    const v = new DataView(cfg.buffer);
    const end = at + src.length;
    const touched = (field: number, size: number): boolean => at < field + size && end > field;
    const q = this.#queues[this.#queueSelect];
    const setup = (this.#status & VIRTIO_STATUS.DRIVER_OK) === 0;
    if (touched(COMMON_CFG.DEVICE_FEATURE_SELECT, 4)) this.#deviceFeatureSelect = v.getUint32(COMMON_CFG.DEVICE_FEATURE_SELECT, true);
    if (touched(COMMON_CFG.DRIVER_FEATURE_SELECT, 4)) this.#driverFeatureSelect = v.getUint32(COMMON_CFG.DRIVER_FEATURE_SELECT, true);
    if (touched(COMMON_CFG.DRIVER_FEATURE, 4) && this.#driverFeatureSelect < 2 && (this.#status & VIRTIO_STATUS.FEATURES_OK) === 0) {
      const shift = BigInt(32 * this.#driverFeatureSelect);
      const value = BigInt(v.getUint32(COMMON_CFG.DRIVER_FEATURE, true)) << shift;
      this.#driverFeatures = (this.#driverFeatures & ~(0xffffffffn << shift)) | value;
    }
    if (touched(COMMON_CFG.MSIX_CONFIG, 2)) this.#configVector = this.#vector(v.getUint16(COMMON_CFG.MSIX_CONFIG, true));
    if (touched(COMMON_CFG.QUEUE_SELECT, 2)) this.#queueSelect = v.getUint16(COMMON_CFG.QUEUE_SELECT, true);
    else if (q && setup) {
      if (touched(COMMON_CFG.QUEUE_SIZE, 2)) {
        const size = v.getUint16(COMMON_CFG.QUEUE_SIZE, true);
        // Split queues: a power of two up to what is offered; anything else keeps the size.
        if (!q.enabled && size > 0 && size <= q.maxSize && (size & (size - 1)) === 0) q.size = size;
      }
      if (touched(COMMON_CFG.QUEUE_MSIX_VECTOR, 2)) q.msixVector = this.#vector(v.getUint16(COMMON_CFG.QUEUE_MSIX_VECTOR, true));
      if (!q.enabled) {
        if (touched(COMMON_CFG.QUEUE_DESC, 8)) q.desc = v.getBigUint64(COMMON_CFG.QUEUE_DESC, true);
        if (touched(COMMON_CFG.QUEUE_DRIVER, 8)) q.driver = v.getBigUint64(COMMON_CFG.QUEUE_DRIVER, true);
        if (touched(COMMON_CFG.QUEUE_DEVICE, 8)) q.device = v.getBigUint64(COMMON_CFG.QUEUE_DEVICE, true);
      }
      // Only 1 may be written (4.1.4.3.2); a queue goes back to 0 by reset.
      if (touched(COMMON_CFG.QUEUE_ENABLE, 2) && v.getUint16(COMMON_CFG.QUEUE_ENABLE, true) === 1) q.enabled = true;
    }
    if (touched(COMMON_CFG.DEVICE_STATUS, 1)) this.#setStatus(v.getUint8(COMMON_CFG.DEVICE_STATUS));
  }

  /** A vector the MSI-X table lacks reads back as NO_VECTOR, which the driver checks (4.1.5.1.2). */
  #vector(v: number): number {
    return v < this.#queues.length + 1 ? v : VIRTIO_MSI_NO_VECTOR;
  }

  #setStatus(value: number): void {
    if (value === 0) return this.#reset();
    const old = this.#status;
    let next = (value & ~VIRTIO_STATUS.NEEDS_RESET) | (old & VIRTIO_STATUS.NEEDS_RESET);
    if (next & VIRTIO_STATUS.FEATURES_OK && !(old & VIRTIO_STATUS.FEATURES_OK)) {
      // Features the device lacks, or no VERSION_1: FEATURES_OK does not stick (3.1.1).
      const ok = (this.#driverFeatures & ~this.deviceFeatures) === 0n && (this.#driverFeatures & featureBit(VIRTIO_F.VERSION_1)) !== 0n;
      if (!ok) next &= ~VIRTIO_STATUS.FEATURES_OK;
    }
    if (next & VIRTIO_STATUS.DRIVER_OK && !(next & VIRTIO_STATUS.FEATURES_OK)) next &= ~VIRTIO_STATUS.DRIVER_OK;
    this.#status = next;
    if (next & VIRTIO_STATUS.DRIVER_OK && !(old & VIRTIO_STATUS.DRIVER_OK)) this.#start();
  }

  /** DRIVER_OK: every enabled queue starts, and may have work already. */
  #start(): void {
    const dma = this.dma;
    if (dma === null) return this.#fail(new VfioError('ENODEV', 'virtio: DRIVER_OK with no client memory bound'));
    const mode = {
      indirect: (this.#driverFeatures & featureBit(VIRTIO_F.RING_INDIRECT_DESC)) !== 0n,
      eventIdx: (this.#driverFeatures & featureBit(VIRTIO_F.RING_EVENT_IDX)) !== 0n,
    };
    try {
      for (const q of this.#queues) if (q.enabled) q.start(dma, mode);
    } catch (err) {
      return this.#fail(err);
    }
    for (const q of this.#queues) if (q.enabled) this.#kick(q);
  }

  #reset(): void {
    this.#retireAll();
    this.#queues = this.#freshQueues(this.#queues.length);
    this.#status = 0;
    this.#driverFeatures = 0n;
    this.#deviceFeatureSelect = 0;
    this.#driverFeatureSelect = 0;
    this.#configVector = VIRTIO_MSI_NO_VECTOR;
    this.#queueSelect = 0;
    this.#lastError = null;
    this.#isr = 0;
    if (this.irqs.mode === 'intx') this.irqs.setLevel(false);
    this.virtioReset();
  }

  #retireAll(): void {
    for (const q of this.#queues) {
      if (q.inFlight > 0) this.#draining.add(q);
      q.retire();
    }
    this.#kicked.clear();
  }

  #freshQueues(n: number): Virtqueue[] {
    return Array.from({ length: n }, (_, i) => new Virtqueue(i, this.#queueSize));
  }

  // ---- queues ----------------------------------------------------------------------

  #notify(at: number): void {
    if (at % VIRTIO_BAR.NOTIFY_MULTIPLIER !== 0) return;
    const q = this.#queues[at / VIRTIO_BAR.NOTIFY_MULTIPLIER];
    if (q && q.enabled && this.#status & VIRTIO_STATUS.DRIVER_OK) this.#kick(q);
  }

  /** Runs the queue's runner, or has the running one look again. */
  #kick(q: Virtqueue): void {
    if (this.#status & VIRTIO_STATUS.NEEDS_RESET) return;
    if (this.#running.has(q)) {
      this.#kicked.add(q);
      return;
    }
    this.#running.add(q);
    void this.#run(q).finally(() => this.#running.delete(q));
  }

  async #run(q: Virtqueue): Promise<void> {
    try {
      do {
        this.#kicked.delete(q);
        for (;;) {
          const chain = await q.pop();
          if (chain === null || q.retired || this.#status & VIRTIO_STATUS.NEEDS_RESET) break;
          this.#serveOne(q, chain);
        }
      } while (this.#kicked.has(q) && !q.retired);
    } catch (err) {
      if (!q.retired) this.#fail(err);
    }
  }

  #serveOne(q: Virtqueue, chain: DescriptorChain): void {
    let served: ServeResult;
    try {
      served = this.serve(q, chain);
    } catch (err) {
      served = Promise.reject(err);
    }
    served
      .then(
        async (len) => {
          if (await q.complete(chain.head, len)) this.#interrupt(VIRTIO_ISR.QUEUE, q.msixVector);
        },
        (err: unknown) => {
          q.abandon();
          throw err;
        },
      )
      .catch((err: unknown) => {
        if (!q.retired) this.#fail(err);
      })
      .finally(() => {
        if (q.retired && q.inFlight === 0) this.#draining.delete(q);
      });
  }

  // ---- interrupts and errors ------------------------------------------------------------

  #interrupt(cause: number, vector: number): void {
    if (this.irqs.mode === 'msix') {
      if (vector !== VIRTIO_MSI_NO_VECTOR) this.irqs.raise(vector);
      return;
    }
    this.#isr |= cause;
    this.irqs.setLevel(true);
  }

  #takeIsr(): number {
    const isr = this.#isr;
    this.#isr = 0;
    if (this.irqs.mode === 'intx') this.irqs.setLevel(false);
    return isr;
  }

  /** The driver broke the rules, or guest memory failed us: NEEDS_RESET and a configuration interrupt (2.1.2). */
  #fail(err: unknown): void {
    if (this.#status & VIRTIO_STATUS.NEEDS_RESET) return;
    this.#lastError = err instanceof VfioError ? err : new VfioError('EIO', `virtio: ${(err as Error).message}`, { cause: err });
    this.#status |= VIRTIO_STATUS.NEEDS_RESET;
    if (this.#status & VIRTIO_STATUS.DRIVER_OK) this.#interrupt(VIRTIO_ISR.CONFIG, this.#configVector);
  }
}

/** A virtio_pci_cap (4.1.4), less the 3 bytes CapabilityList writes: cfg_type, bar, id, padding, offset, length[, multiplier]. */
function virtioCap(type: number, offset: number, length: number, multiplier?: number): Uint8Array {
  const data = new Uint8Array(multiplier === undefined ? 13 : 17);
  const v = new DataView(data.buffer);
  v.setUint8(0, type);
  v.setUint8(1, VIRTIO_BAR.INDEX);
  v.setUint32(5, offset, true);
  v.setUint32(9, length, true);
  if (multiplier !== undefined) v.setUint32(13, multiplier, true);
  return data;
}

function word(features: bigint, select: number): number {
  return Number((features >> BigInt(32 * select)) & 0xffffffffn);
}

function copyOut(from: Uint8Array, at: number, dest: Uint8Array): void {
  const n = Math.max(0, Math.min(dest.length, from.length - at));
  dest.set(from.subarray(at, at + n));
}
