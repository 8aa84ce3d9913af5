/**
 * virtio-blk (virtio 1.x, 5.2) on the virtio PCI transport: a disk backed
 * by a raw image file. READ, WRITE, FLUSH and GET_ID; capacity, seg_max,
 * size_max and blk_size in the configuration; read-only on request
 * (VIRTIO_BLK_F_RO: writes fail with IOERR).
 *
 * A request is served with a bounce buffer between guest memory and the
 * file (the file I/O runs on libuv's threads, which must never see guest
 * memory the client could unmap meanwhile). A failing backing file is the
 * request's IOERR, not the device's error. A request longer than
 * seg_max x size_max, or reaching past the capacity, is an IOERR too.
 */
import { isVfioError, VfioError } from '../../base/errors.js';
import type { DescriptorChain } from '../virtio/descriptor-chain.js';
import { featureBit } from '../virtio/spec.js';
import { VirtioPciDevice, type VirtioPciDeviceOptions } from '../virtio/virtio-pci-device.js';
import type { Virtqueue } from '../virtio/virtqueue.js';
import { BouncePool } from './bounce-pool.js';
import { ByteGate } from './byte-gate.js';
import { SECTOR_SIZE, type FileBackend } from './file-backend.js';

/** Feature bits of virtio-blk (5.2.3). */
export const VIRTIO_BLK_F = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
} as const;

/** Request types (5.2.6). */
export const VIRTIO_BLK_T = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const;
/** Request status, the chain's last byte. */
export const VIRTIO_BLK_S = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** Offsets in struct virtio_blk_config. */
export const VIRTIO_BLK_CONFIG = {
  CAPACITY: 0x00,
  SIZE_MAX: 0x08,
  SEG_MAX: 0x0c,
  BLK_SIZE: 0x14,
  /** Up to num_queues; the rest (features not offered) reads 0. */
  SIZE: 0x24,
} as const;

/** What the device offers and holds (README "Security model"). */
export const VIRTIO_BLK_LIMITS = {
  /** Entries of the request queue. */
  QUEUE_SIZE: 256,
  /** Data buffers per request: the queue less the header and the status (as QEMU offers). */
  SEG_MAX: 254,
  /** Bytes per data buffer. */
  SIZE_MAX: 64 * 1024,
  /** Bounce-buffer bytes held for requests in flight, per device. */
  IN_FLIGHT_BYTES: 64 * 1024 * 1024,
  /** Bounce-buffer bytes kept for reuse between requests, per device. */
  POOLED_BYTES: 16 * 1024 * 1024,
  /** GET_ID's answer. */
  ID_BYTES: 20,
} as const;

/** Largest request: every data buffer full. */
const MAX_REQUEST_BYTES = VIRTIO_BLK_LIMITS.SEG_MAX * VIRTIO_BLK_LIMITS.SIZE_MAX;
const HEADER_BYTES = 16;
/** PCI class: mass storage, SCSI (as QEMU's virtio-blk-pci). */
const CLASS_STORAGE_SCSI = 0x010000;

export interface VirtioBlkDeviceOptions extends Pick<VirtioPciDeviceOptions, 'name' | 'core' | 'onRelease'> {
  /** The open image; the device closes it when released. */
  backend: FileBackend;
  /** GET_ID's answer (up to 20 bytes); default the device name, dashes removed. */
  serial?: string;
}

export class VirtioBlkDevice extends VirtioPciDevice {
  readonly backend: FileBackend;
  readonly #id: Uint8Array;
  readonly #gate = new ByteGate(VIRTIO_BLK_LIMITS.IN_FLIGHT_BYTES);
  readonly #pool = new BouncePool(VIRTIO_BLK_LIMITS.POOLED_BYTES);

  constructor(options: VirtioBlkDeviceOptions) {
    const { backend, serial, ...device } = options;
    const features =
      featureBit(VIRTIO_BLK_F.SIZE_MAX) |
      featureBit(VIRTIO_BLK_F.SEG_MAX) |
      featureBit(VIRTIO_BLK_F.BLK_SIZE) |
      featureBit(VIRTIO_BLK_F.FLUSH) |
      (backend.readOnly ? featureBit(VIRTIO_BLK_F.RO) : 0n);
    super({
      ...device,
      virtioId: 2,
      classCode: CLASS_STORAGE_SCSI,
      features,
      queues: 1,
      queueSize: VIRTIO_BLK_LIMITS.QUEUE_SIZE,
      configSize: VIRTIO_BLK_CONFIG.SIZE,
    });
    this.backend = backend;
    const v = new DataView(this.deviceConfig.buffer);
    v.setBigUint64(VIRTIO_BLK_CONFIG.CAPACITY, BigInt(backend.size / SECTOR_SIZE), true);
    v.setUint32(VIRTIO_BLK_CONFIG.SIZE_MAX, VIRTIO_BLK_LIMITS.SIZE_MAX, true);
    v.setUint32(VIRTIO_BLK_CONFIG.SEG_MAX, VIRTIO_BLK_LIMITS.SEG_MAX, true);
    v.setUint32(VIRTIO_BLK_CONFIG.BLK_SIZE, SECTOR_SIZE, true);
    this.#id = new Uint8Array(VIRTIO_BLK_LIMITS.ID_BYTES);
    this.#id.set(new TextEncoder().encode(serial ?? this.name.replaceAll('-', '')).subarray(0, VIRTIO_BLK_LIMITS.ID_BYTES));
  }

  /** Sectors the guest sees. */
  get capacity(): number {
    return this.backend.size / SECTOR_SIZE;
  }

  protected override async serve(queue: Virtqueue, chain: DescriptorChain): Promise<number> {
    if (chain.readableBytes < HEADER_BYTES || chain.writableBytes < 1) {
      throw new VfioError(
        'EPROTO',
        `virtio-blk: a request of ${chain.readableBytes} readable and ${chain.writableBytes} writable bytes lacks its header or status`,
      );
    }
    const header = new Uint8Array(HEADER_BYTES);
    await chain.read(0, header);
    const h = new DataView(header.buffer);
    const type = h.getUint32(0, true);
    const sector = h.getBigUint64(8, true);
    const statusAt = chain.writableBytes - 1;
    let status: number;
    let written = 0;
    switch (type) {
      case VIRTIO_BLK_T.IN:
        status = await this.#transfer(queue, chain, sector, statusAt, false);
        if (status === VIRTIO_BLK_S.OK) written = statusAt;
        break;
      case VIRTIO_BLK_T.OUT:
        status = await this.#transfer(queue, chain, sector, chain.readableBytes - HEADER_BYTES, true);
        break;
      case VIRTIO_BLK_T.FLUSH:
        status = await this.#io(() => this.backend.flush());
        break;
      case VIRTIO_BLK_T.GET_ID: {
        written = Math.min(statusAt, VIRTIO_BLK_LIMITS.ID_BYTES);
        await chain.write(0, this.#id.subarray(0, written));
        status = VIRTIO_BLK_S.OK;
        break;
      }
      default:
        status = VIRTIO_BLK_S.UNSUPP;
    }
    // Reset while the file worked: the chain is not the driver's to hear about any more.
    if (queue.retired) return 0;
    await chain.write(statusAt, new Uint8Array([status]));
    return written + 1;
  }

  /** READ (guest ← file) or WRITE (file ← guest) of `length` bytes at `sector`: the request's status. */
  async #transfer(queue: Virtqueue, chain: DescriptorChain, sector: bigint, length: number, write: boolean): Promise<number> {
    if (write && this.backend.readOnly) return VIRTIO_BLK_S.IOERR;
    const position = sector * BigInt(SECTOR_SIZE);
    if (length % SECTOR_SIZE !== 0 || length > MAX_REQUEST_BYTES || position + BigInt(length) > BigInt(this.backend.size)) {
      return VIRTIO_BLK_S.IOERR;
    }
    if (length === 0) return VIRTIO_BLK_S.OK;
    const at = Number(position);
    const held = BouncePool.sizeOf(length);
    await this.#gate.take(held);
    // Not zeroed: it reaches guest memory or the file only once wholly filled.
    const buf = this.#pool.take(length);
    try {
      if (write) {
        await chain.read(HEADER_BYTES, buf);
        return await this.#io(async () => {
          await this.backend.write(buf, at);
          // Without FLUSH negotiated the driver expects write-through (5.2.6.2).
          if ((this.driverFeatures & featureBit(VIRTIO_BLK_F.FLUSH)) === 0n) await this.backend.flush();
        });
      }
      const status = await this.#io(() => this.backend.read(buf, at));
      if (status === VIRTIO_BLK_S.OK && !queue.retired) await chain.write(0, buf);
      return status;
    } finally {
      this.#pool.give(buf);
      this.#gate.release(held);
    }
  }

  /** Runs backing-file I/O: its failure is the request's IOERR. */
  async #io(work: () => Promise<void>): Promise<number> {
    try {
      await work();
      return VIRTIO_BLK_S.OK;
    } catch (err) {
      if (isVfioError(err, 'EPROTO')) throw err;
      return VIRTIO_BLK_S.IOERR;
    }
  }

  override release(): void {
    try {
      super.release();
    } finally {
      void this.backend.close();
    }
  }
}
