/**
 * A split virtqueue (virtio 1.x, 2.7): the registers the driver programs
 * through the common configuration, and the device's side of the rings in
 * guest memory, reached only through the client's DMA access.
 *
 * The device pops chains from the available ring (pop), serves them in any
 * order, and gives them back through the used ring (complete), in batches:
 * one used-index update and at most one interrupt per batch, suppressed as
 * the driver asks (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with
 * EVENT_IDX). With EVENT_IDX the device publishes avail_event so the
 * driver kicks only when it adds past what the device has seen.
 *
 * What the driver wrote is never trusted: a head or next index outside the
 * table, a chain longer than its table (a loop), a nested or malformed
 * indirect table, a readable buffer after a writable one, or more chains
 * outstanding than the queue holds is a VfioError (EPROTO), which the
 * transport turns into DEVICE_NEEDS_RESET. A queue is retired on reset:
 * whatever is still in flight on it then touches guest memory no more.
 */
import { VfioError } from '../../base/errors.js';
import type { DmaAccess } from '../../iommufd/address-space.js';
import { DescriptorChain, type Segment } from './descriptor-chain.js';
import { needEvent, VIRTIO_MSI_NO_VECTOR, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC } from './spec.js';

/** Largest indirect table, in descriptors (Linux never makes one longer than its queue). */
export const VIRTQ_MAX_INDIRECT = 1024;

/** How the queue behaves, fixed when the driver sets DRIVER_OK. */
export interface VirtqueueMode {
  indirect: boolean;
  eventIdx: boolean;
}

export class Virtqueue {
  /** Entries; the driver may lower it (a power of two) before enabling. */
  size: number;
  msixVector = VIRTIO_MSI_NO_VECTOR;
  enabled = false;
  /** Guest addresses of the descriptor table, the available ring and the used ring. */
  desc = 0n;
  driver = 0n;
  device = 0n;

  #dma: DmaAccess | null = null;
  #mode: VirtqueueMode = { indirect: false, eventIdx: false };
  #lastAvail = 0;
  #usedIdx = 0;
  #inFlight = 0;
  #retired = false;
  /** Completions waiting for the used ring, and whether a flush runs. */
  #done: Array<{ head: number; len: number }> = [];
  #flushing = false;

  constructor(
    readonly index: number,
    readonly maxSize: number,
  ) {
    this.size = maxSize;
  }

  /** Chains popped and not yet completed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** True once reset took the queue away: nothing of it reaches guest memory again. */
  get retired(): boolean {
    return this.#retired;
  }

  /** DRIVER_OK: the rings are in the client memory `dma` reaches. */
  start(dma: DmaAccess, mode: VirtqueueMode): void {
    this.#dma = dma;
    this.#mode = mode;
    this.#checkLayout();
  }

  retire(): void {
    this.#retired = true;
    this.#dma = null;
    this.#done = [];
  }

  /**
   * The next available chain, or null when the driver has made none
   * available since the last pop (with EVENT_IDX, avail_event is updated
   * and the index read again before answering null, so a kick is never lost).
   */
  async pop(): Promise<DescriptorChain | null> {
    const dma = this.#live();
    let avail = await this.#availIdx(dma);
    if (avail === this.#lastAvail && this.#mode.eventIdx) {
      await this.#writeU16(dma, this.#availEventAddr(), this.#lastAvail);
      avail = await this.#availIdx(dma);
    }
    if (this.#retired || avail === this.#lastAvail) return null;
    if (((avail - this.#lastAvail) & 0xffff) > this.size) {
      throw new VfioError(
        'EPROTO',
        `virtqueue ${this.index}: the available index moved ${(avail - this.#lastAvail) & 0xffff} entries, the queue has ${this.size}`,
      );
    }
    if (this.#inFlight >= this.size) {
      throw new VfioError('EPROTO', `virtqueue ${this.index}: more chains outstanding than the queue's ${this.size} entries`);
    }
    const slot = Number(this.driver) + 4 + 2 * (this.#lastAvail % this.size);
    const head = await this.#readU16(dma, slot);
    const chain = await this.#chain(dma, head);
    if (this.#retired) return null;
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    this.#inFlight++;
    return chain;
  }

  /**
   * Chain `head` is served, `len` bytes written into it. Returns a promise
   * that settles when the used ring holds it (with whether the driver
   * wants an interrupt for this batch, for the last completion of a batch
   * only; false for the others).
   */
  complete(head: number, len: number): Promise<boolean> {
    this.#inFlight--;
    if (this.#retired) return Promise.resolve(false);
    this.#done.push({ head, len });
    if (this.#flushing) return Promise.resolve(false);
    return this.#flush();
  }

  /** Chain popped earlier will not be completed (its serving failed; the device goes to NEEDS_RESET). */
  abandon(): void {
    this.#inFlight--;
  }

  async #flush(): Promise<boolean> {
    this.#flushing = true;
    let notify = false;
    try {
      while (this.#done.length > 0 && !this.#retired) {
        const dma = this.#live();
        const batch = this.#done;
        this.#done = [];
        const old = this.#usedIdx;
        const ring = Number(this.device) + 4;
        // One write per run of slots up to the ring's end.
        for (let k = 0; k < batch.length;) {
          const slot = (this.#usedIdx + k) % this.size;
          const n = Math.min(batch.length - k, this.size - slot);
          const bytes = new Uint8Array(8 * n);
          const view = new DataView(bytes.buffer);
          for (let j = 0; j < n; j++) {
            view.setUint32(8 * j, batch[k + j]!.head, true);
            view.setUint32(8 * j + 4, batch[k + j]!.len, true);
          }
          await dma.write(ring + 8 * slot, bytes);
          k += n;
        }
        if (this.#retired) return false;
        this.#usedIdx = (this.#usedIdx + batch.length) & 0xffff;
        await this.#writeU16(dma, Number(this.device) + 2, this.#usedIdx);
        if (this.#retired) return false;
        notify = (await this.#wantsInterrupt(dma, old)) || notify;
      }
      return notify && !this.#retired;
    } finally {
      this.#flushing = false;
    }
  }

  async #wantsInterrupt(dma: DmaAccess, old: number): Promise<boolean> {
    if (this.#mode.eventIdx) {
      const usedEvent = await this.#readU16(dma, Number(this.driver) + 4 + 2 * this.size);
      return needEvent(usedEvent, this.#usedIdx, old);
    }
    return ((await this.#readU16(dma, Number(this.driver))) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Walks the chain from `head`, following NEXT and at most one indirect table. */
  async #chain(dma: DmaAccess, head: number): Promise<DescriptorChain> {
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    if (head >= this.size) throw new VfioError('EPROTO', `virtqueue ${this.index}: head ${head} is outside the ${this.size}-entry table`);
    let table: Uint8Array | null = null;
    let tableSize = this.size;
    let i = head;
    let seen = 0;
    const desc = new Uint8Array(VIRTQ_DESC.SIZE);
    for (;;) {
      if (++seen > tableSize) {
        throw new VfioError('EPROTO', `virtqueue ${this.index}: the chain from ${head} is longer than its ${tableSize}-entry table (a loop?)`);
      }
      let d: DataView;
      if (table) {
        d = new DataView(table.buffer, table.byteOffset + VIRTQ_DESC.SIZE * i, VIRTQ_DESC.SIZE);
      } else {
        await dma.read(Number(this.desc) + VIRTQ_DESC.SIZE * i, desc);
        d = new DataView(desc.buffer);
      }
      const hi = d.getUint32(4, true);
      const len = d.getUint32(8, true);
      const flags = d.getUint16(12, true);
      const next = d.getUint16(14, true);
      if (hi >= 0x200000) throw new VfioError('EFAULT', `virtqueue ${this.index}: descriptor ${i} points beyond 2^53`);
      const addr = hi * 0x1_0000_0000 + d.getUint32(0, true);
      if (flags & VIRTQ_DESC.F_INDIRECT) {
        table = await this.#indirect(dma, table !== null, seen, flags, addr, len);
        tableSize = table.length / VIRTQ_DESC.SIZE;
        i = 0;
        seen = 0;
        continue;
      }
      if (flags & VIRTQ_DESC.F_WRITE) writable.push({ addr, len });
      else if (writable.length > 0)
        throw new VfioError('EPROTO', `virtqueue ${this.index}: a readable buffer follows a writable one in the chain from ${head}`);
      else readable.push({ addr, len });
      if (!(flags & VIRTQ_DESC.F_NEXT)) break;
      if (next >= tableSize) throw new VfioError('EPROTO', `virtqueue ${this.index}: next ${next} is outside the ${tableSize}-entry table`);
      i = next;
    }
    return new DescriptorChain(head, readable, writable, dma);
  }

  /** Reads an indirect table, after checking the descriptor pointing to it. */
  async #indirect(dma: DmaAccess, nested: boolean, position: number, flags: number, addr: number, len: number): Promise<Uint8Array> {
    const why = !this.#mode.indirect
      ? 'indirect descriptors were not negotiated'
      : nested
        ? 'an indirect table holds an indirect descriptor'
        : position !== 1
          ? 'an indirect descriptor is not the head of its chain'
          : flags & VIRTQ_DESC.F_NEXT
            ? 'an indirect descriptor also has NEXT'
            : len === 0 || len % VIRTQ_DESC.SIZE !== 0 || len / VIRTQ_DESC.SIZE > VIRTQ_MAX_INDIRECT
              ? `an indirect table of ${len} bytes is not 1..${VIRTQ_MAX_INDIRECT} descriptors`
              : null;
    if (why) throw new VfioError('EPROTO', `virtqueue ${this.index}: ${why}`);
    const table = new Uint8Array(len);
    await dma.read(addr, table);
    return table;
  }

  #checkLayout(): void {
    if (this.size === 0 || (this.size & (this.size - 1)) !== 0 || this.size > this.maxSize) {
      throw new VfioError('EPROTO', `virtqueue ${this.index}: size ${this.size} is not a power of two up to ${this.maxSize}`);
    }
    // Alignment (2.7): descriptors 16, available ring 2, used ring 4.
    if (this.desc % 16n !== 0n || this.driver % 2n !== 0n || this.device % 4n !== 0n) {
      throw new VfioError('EPROTO', `virtqueue ${this.index}: its rings are misaligned`);
    }
    for (const a of [this.desc, this.driver, this.device]) {
      if (a >= 1n << 53n) throw new VfioError('EFAULT', `virtqueue ${this.index}: a ring lies beyond 2^53`);
    }
  }

  #availIdx(dma: DmaAccess): Promise<number> {
    return this.#readU16(dma, Number(this.driver) + 2);
  }

  #availEventAddr(): number {
    return Number(this.device) + 4 + 8 * this.size;
  }

  async #readU16(dma: DmaAccess, addr: number): Promise<number> {
    const b = new Uint8Array(2);
    await dma.read(addr, b);
    return b[0]! | (b[1]! << 8);
  }

  async #writeU16(dma: DmaAccess, addr: number, value: number): Promise<void> {
    await dma.write(addr, new Uint8Array([value & 0xff, value >>> 8]));
  }

  #live(): DmaAccess {
    if (this.#retired || this.#dma === null) throw new VfioError('ENODEV', `virtqueue ${this.index} is not running`);
    return this.#dma;
  }
}
