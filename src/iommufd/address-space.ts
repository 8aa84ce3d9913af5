/**
 * An I/O address space (iommufd's IOAS): the DMA mappings a client made, and
 * the one way drivers reach client memory. Accesses are checked against the
 * mappings byte for byte: a range that is not mapped fails with EFAULT, one
 * mapped without the needed permission with EPERM, and nothing outside a
 * mapping is ever read or written.
 */
import { Budget } from '../base/budget.js';
import { VfioError } from '../base/errors.js';
import { DmaProt } from '../base/uapi.js';
import type { DmaBacking } from './dma-backing.js';
import { DirtyLog } from './dirty-log.js';
import { dmaChannel } from './dma-trace.js';

/** Largest IOVA end uvfio accepts: every address stays an exact JS number. */
export const MAX_IOVA_END = 2 ** 53;

export interface DmaMapping {
  readonly iova: number;
  readonly length: number;
  /** DmaProt bits */
  readonly prot: number;
  readonly backing: DmaBacking;
  /** where the mapping starts inside its backing */
  readonly backingOffset: number;
}

/** What a driver that reaches client memory must handle (the kernel's iommufd_access_ops). */
export interface DmaAccessOps {
  /**
   * The range [iova, iova+length) is about to disappear: drop any reference
   * to it. Called synchronously, before the memory is released.
   */
  dmaUnmap(iova: number, length: number): void;
}

export interface MapOptions {
  /** DmaProt bits; default READ|WRITE */
  prot?: number;
  /** offset inside the backing; default 0 */
  offset?: number;
}

export interface AddressSpaceOptions {
  /** how many mappings at most (vfio-user's max_dma_maps); ENOSPC beyond. Ignored with `mappings`. */
  maxMappings?: number;
  /** the budget every mapping is counted against (a client's share of a daemon's, say) */
  mappings?: Budget;
}

function checkRange(what: string, iova: number, length: number): void {
  if (!Number.isSafeInteger(iova) || iova < 0) {
    throw new VfioError('EINVAL', `${what}: iova ${iova} is not a non-negative integer`);
  }
  if (!Number.isSafeInteger(length) || length <= 0) {
    throw new VfioError('EINVAL', `${what}: length ${length} must be a positive integer`);
  }
  if (iova + length > MAX_IOVA_END) {
    throw new VfioError('EOVERFLOW', `${what}: range ends beyond 2^53`);
  }
}

export class IoAddressSpace {
  /** sorted by iova, never overlapping */
  private readonly mappings: DmaMapping[] = [];
  private readonly accesses = new Set<DmaAccess>();
  private destroyed = false;
  /** Who this address space belongs to, as DMA traces name it (dma-trace.ts); set by its owner. */
  traceOwner: unknown = undefined;
  /** What every mapping is counted against. */
  readonly budget: Budget;

  constructor(options: AddressSpaceOptions = {}) {
    this.budget = options.mappings ?? new Budget('dma-maps', options.maxMappings ?? 65535);
  }

  /** How many mappings this address space may hold (its budget's limit). */
  get maxMappings(): number {
    return this.budget.max;
  }

  /** Number of live mappings. */
  get size(): number {
    return this.mappings.length;
  }

  /** A copy of the mappings, in IOVA order. */
  list(): readonly DmaMapping[] {
    return this.mappings.slice();
  }

  /**
   * Throws what map() of [iova, iova+length) would throw for the range
   * itself (EINVAL, EOVERFLOW, EEXIST for an overlap, OverBudget past the
   * mapping budget), so a caller can refuse before it builds the backing.
   */
  checkMap(iova: number, length: number): void {
    this.assertLive();
    checkRange('map', iova, length);
    this.checkFree(iova, length);
    if (this.budget.room < 1) this.budget.take(1, 'map: DMA mappings');
  }

  /**
   * Maps [iova, iova+length) onto backing[offset, offset+length). Fails with
   * EEXIST when any byte is already mapped; the backing then stays the caller's.
   */
  map(iova: number, length: number, backing: DmaBacking, options: MapOptions = {}): void {
    this.assertLive();
    checkRange('map', iova, length);
    const prot = options.prot ?? DmaProt.READ | DmaProt.WRITE;
    const offset = options.offset ?? 0;
    if ((prot & ~(DmaProt.READ | DmaProt.WRITE)) !== 0) {
      throw new VfioError('EINVAL', `map: unknown protection bits 0x${prot.toString(16)}`);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > backing.size) {
      throw new VfioError('EINVAL', `map: backing range [${offset}, ${offset + length}) exceeds the backing's ${backing.size} bytes`);
    }
    const usable =
      backing.reach === 'messages'
        ? backing.read !== undefined && backing.write !== undefined
        : backing.readSync !== undefined && backing.writeSync !== undefined && (backing.reach !== 'memory' || backing.view !== undefined);
    if (!usable) throw new VfioError('EINVAL', `map: a backing reached by ${backing.reach} lacks the accesses that needs`);
    const at = this.checkFree(iova, length);
    this.budget.take(1, 'map: DMA mappings');
    this.mappings.splice(at, 0, { iova, length, prot, backing, backingOffset: offset });
  }

  /**
   * Removes every mapping inside [iova, iova+length). A mapping only partly
   * inside the range is not split: that is EINVAL and nothing is removed.
   * ENOENT when the range holds no mapping. Returns the bytes unmapped.
   */
  unmap(iova: number, length: number): number {
    this.assertLive();
    checkRange('unmap', iova, length);
    const end = iova + length;
    const first = this.lowerBound(iova);
    const prev = this.mappings[first - 1];
    if (prev && prev.iova + prev.length > iova) {
      throw new VfioError('EINVAL', `unmap: range starts inside the mapping at 0x${prev.iova.toString(16)}`);
    }
    let last = first;
    while (last < this.mappings.length && this.mappings[last]!.iova < end) {
      const m = this.mappings[last]!;
      if (m.iova + m.length > end) {
        throw new VfioError('EINVAL', `unmap: range ends inside the mapping at 0x${m.iova.toString(16)}`);
      }
      last++;
    }
    if (last === first) {
      throw new VfioError('ENOENT', `unmap: nothing is mapped in [0x${iova.toString(16)}, +0x${length.toString(16)})`);
    }
    return this.remove(first, last);
  }

  /** Removes every mapping; returns the bytes unmapped (0 when there were none). */
  unmapAll(): number {
    if (this.mappings.length === 0) return 0;
    return this.remove(0, this.mappings.length);
  }

  /** Unmaps everything and detaches every access; the address space is then unusable. */
  destroy(): void {
    if (this.destroyed) return;
    this.unmapAll();
    for (const a of [...this.accesses]) a.detach();
    this.destroyed = true;
  }

  /** Registers a user of this address space that must be told about unmaps. */
  attachAccess(ops: DmaAccessOps): DmaAccess {
    this.assertLive();
    const access = new DmaAccess(this, ops);
    this.accesses.add(access);
    return access;
  }

  /** @internal */
  detachAccess(access: DmaAccess): void {
    this.accesses.delete(access);
  }

  /**
   * Reads dest.byteLength bytes at iova, across adjacent mappings: at once
   * where the backing is reached here (memory, file), through its read()
   * otherwise (messages).
   */
  async read(iova: number, dest: Uint8Array): Promise<void> {
    await this.transfer(iova, dest, DmaProt.READ, false);
  }

  /** Writes src at iova; see read(). */
  async write(iova: number, src: Uint8Array): Promise<void> {
    await this.transfer(iova, src, DmaProt.WRITE, false);
  }

  /** Like read(), for memory reached here only (EAGAIN when a message would be needed). */
  readSync(iova: number, dest: Uint8Array): void {
    void this.transfer(iova, dest, DmaProt.READ, true);
  }

  /** Like write(), for memory reached here only. */
  writeSync(iova: number, src: Uint8Array): void {
    void this.transfer(iova, src, DmaProt.WRITE, true);
  }

  /**
   * A zero-copy view of [iova, iova+length) when it lies inside one mapping
   * whose memory is mapped here (EAGAIN otherwise: use the copies) and
   * which allows `prot`. The view is valid until that mapping is unmapped
   * (DmaAccessOps.dmaUnmap tells when).
   */
  view(iova: number, length: number, prot: number): Uint8Array {
    checkRange('view', iova, length);
    const m = this.find(iova);
    if (!m || iova + length > m.iova + m.length) {
      throw new VfioError('EFAULT', `view: [0x${iova.toString(16)}, +${length}) is not inside one mapping`);
    }
    this.checkProt(m, prot, iova);
    if (m.backing.reach !== 'memory') {
      throw new VfioError('EAGAIN', `view: this mapping is reached by ${m.backing.reach}, not mapped here`);
    }
    return m.backing.view!(m.backingOffset + (iova - m.iova), length);
  }

  // Returns a promise only when a message-backed segment was involved; the
  // sync variants pass `sync` and get every check and copy done before return.
  private transfer(iova: number, buf: Uint8Array, prot: number, sync: boolean): Promise<void> | undefined {
    this.assertLive();
    if (buf.byteLength === 0) return undefined;
    checkRange(prot === DmaProt.READ ? 'dma read' : 'dma write', iova, buf.byteLength);
    // Check the whole range first, so a failed access changes nothing.
    const segments: DmaMapping[] = [];
    let cur = iova;
    const end = iova + buf.byteLength;
    let idx = this.lowerBound(cur + 1) - 1;
    let m: DmaMapping | undefined = this.mappings[idx];
    if (m && m.iova + m.length <= cur) m = undefined;
    while (cur < end) {
      if (!m || m.iova > cur) {
        throw new VfioError('EFAULT', `dma: 0x${cur.toString(16)} is not mapped`);
      }
      this.checkProt(m, prot, cur);
      if (sync && m.backing.reach === 'messages') {
        throw new VfioError('EAGAIN', 'dma: this mapping is reached by messages; use the async access');
      }
      segments.push(m);
      cur = m.iova + m.length;
      m = this.mappings[++idx];
    }
    let pending: Promise<void>[] | undefined;
    cur = iova;
    for (const seg of segments) {
      const n = Math.min(end, seg.iova + seg.length) - cur;
      const off = seg.backingOffset + (cur - seg.iova);
      const part = n === buf.byteLength ? buf : buf.subarray(cur - iova, cur - iova + n);
      const b = seg.backing;
      if (b.reach !== 'messages') {
        if (prot === DmaProt.READ) b.readSync!(off, part);
        else b.writeSync!(off, part);
      } else {
        (pending ??= []).push(prot === DmaProt.READ ? seg.backing.read!(off, part) : seg.backing.write!(off, part));
      }
      cur += n;
    }
    return pending ? Promise.all(pending).then(() => undefined) : undefined;
  }

  private checkProt(m: DmaMapping, prot: number, at: number): void {
    if ((m.prot & prot) !== prot) {
      const need = prot === DmaProt.READ ? 'read' : 'write';
      throw new VfioError('EPERM', `dma: the mapping at 0x${at.toString(16)} does not allow ${need}`);
    }
  }

  private remove(first: number, last: number): number {
    const gone = this.mappings.slice(first, last);
    // Users first, then the memory: a driver must never hold a view past this.
    for (const m of gone) {
      for (const a of this.accesses) a.notifyUnmap(m.iova, m.length);
    }
    this.mappings.splice(first, last - first);
    this.budget.release(gone.length);
    let bytes = 0;
    for (const m of gone) {
      bytes += m.length;
      m.backing.release();
    }
    return bytes;
  }

  /** EEXIST if any byte of the range is mapped; else where a mapping of it goes. */
  private checkFree(iova: number, length: number): number {
    const at = this.lowerBound(iova);
    const prev = this.mappings[at - 1];
    const next = this.mappings[at];
    if ((prev && prev.iova + prev.length > iova) || (next && next.iova < iova + length)) {
      throw new VfioError('EEXIST', `map: [0x${iova.toString(16)}, +0x${length.toString(16)}) overlaps a mapping`);
    }
    return at;
  }

  /** The mapping containing iova, if any. */
  private find(iova: number): DmaMapping | undefined {
    const at = this.lowerBound(iova + 1) - 1;
    const m = this.mappings[at];
    return m && m.iova <= iova && iova < m.iova + m.length ? m : undefined;
  }

  /** First index whose mapping starts at or after iova. */
  private lowerBound(iova: number): number {
    let lo = 0;
    let hi = this.mappings.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.mappings[mid]!.iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private assertLive(): void {
    if (this.destroyed) throw new VfioError('ENODEV', 'the address space was destroyed');
  }
}

/**
 * One user's handle on an address space (the kernel's iommufd_access): reads
 * and writes through it, and is told through its ops before a range it may
 * hold disappears. After detach() every access fails with ENODEV.
 */
export class DmaAccess {
  private ioas: IoAddressSpace | null;
  /** What the device wrote through this access, for DMA logging. */
  readonly dirty = new DirtyLog();

  /** @internal */
  constructor(
    ioas: IoAddressSpace,
    private readonly ops: DmaAccessOps,
  ) {
    this.ioas = ioas;
  }

  get attached(): boolean {
    return this.ioas !== null;
  }

  read(iova: number, dest: Uint8Array): Promise<void> {
    const done = this.live().read(iova, dest);
    if (dmaChannel.hasSubscribers) this.traced(done, 'read', iova, dest.byteLength);
    return done;
  }
  write(iova: number, src: Uint8Array): Promise<void> {
    const done = this.live().write(iova, src);
    this.dirty.wrote(iova, src.byteLength);
    if (dmaChannel.hasSubscribers) this.traced(done, 'write', iova, src.byteLength);
    return done;
  }
  readSync(iova: number, dest: Uint8Array): void {
    this.live().readSync(iova, dest);
    if (dmaChannel.hasSubscribers) this.publish('read', iova, dest.byteLength);
  }
  writeSync(iova: number, src: Uint8Array): void {
    this.live().writeSync(iova, src);
    this.dirty.wrote(iova, src.byteLength);
    if (dmaChannel.hasSubscribers) this.publish('write', iova, src.byteLength);
  }
  view(iova: number, length: number, prot: number): Uint8Array {
    const v = this.live().view(iova, length, prot);
    if ((prot & DmaProt.WRITE) !== 0) this.dirty.viewed(iova, length);
    if (dmaChannel.hasSubscribers) this.publish('view', iova, length);
    return v;
  }

  /** Idempotent. */
  detach(): void {
    this.ioas?.detachAccess(this);
    this.ioas = null;
  }

  /** @internal */
  notifyUnmap(iova: number, length: number): void {
    this.dirty.unmapped(iova, length);
    try {
      this.ops.dmaUnmap(iova, length);
    } catch (err) {
      // An unmap cannot be refused: a driver bug must not keep memory alive.
      process.emitWarning(`dmaUnmap callback threw: ${(err as Error).message}`);
    }
  }

  private live(): IoAddressSpace {
    if (!this.ioas) throw new VfioError('ENODEV', 'this DMA access was detached');
    return this.ioas;
  }

  /** Publishes an asynchronous access once it succeeded (a failed one did no DMA). */
  private traced(done: Promise<void>, op: 'read' | 'write', iova: number, length: number): void {
    const owner = this.ioas?.traceOwner;
    done.then(
      () => dmaChannel.publish({ owner, op, iova, length }),
      () => {},
    );
  }

  private publish(op: 'read' | 'write' | 'view', iova: number, length: number): void {
    dmaChannel.publish({ owner: this.ioas?.traceOwner, op, iova, length });
  }
}
