/**
 * DMA dirty-page logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*): which pages
 * of client memory a device wrote, for a migration that copies guest
 * memory while the guest runs. It lives on the DMA access, so every write
 * a driver makes through it is logged without the driver doing anything:
 *
 * - write() and writeSync() mark the pages they touch;
 * - a writable view() cannot be watched, so its pages count as dirty in
 *   every report until they are unmapped (the kernel's type1 IOMMU treats
 *   pinned pages the same way). Views are remembered from the moment they
 *   are taken, logging or not, so one taken before logging started counts.
 *
 * Memory stays proportional to what was written: pages are kept in 128 MiB
 * chunks of bits (4 KiB each at 4 KiB pages), made when first touched.
 * Limits: at most MAX_LOG_RANGES ranges, a report's bitmap at most the
 * caller's `maxBytes`.
 */
import { VfioError } from '../base/errors.js';

/** Largest IOVA end (address-space.ts's MAX_IOVA_END; not imported: that file imports this one). */
const MAX_IOVA_END = 2 ** 53;

/** The smallest page size logged or reported. */
export const MIN_DIRTY_PAGE = 4096;
/** How many ranges DMA_LOGGING_START may name (the kernel's LOG_MAX_RANGES). */
export const MAX_LOG_RANGES = 256;

const CHUNK_PAGES = 1 << 15;
const WORDS = CHUNK_PAGES / 32;

/** One range of IOVA to log. */
export interface DirtyRange {
  iova: number;
  length: number;
}

/** A sparse set of page numbers (pages of one size). */
class PageSet {
  readonly #chunks = new Map<number, Uint32Array>();

  constructor(readonly pageSize: number) {}

  /** Adds every page that [iova, iova+length) touches. */
  add(iova: number, length: number): void {
    const first = Math.floor(iova / this.pageSize);
    const last = Math.floor((iova + length - 1) / this.pageSize);
    for (let p = first; p <= last; p++) {
      const c = Math.floor(p / CHUNK_PAGES);
      let bits = this.#chunks.get(c);
      if (bits === undefined) {
        bits = new Uint32Array(WORDS);
        this.#chunks.set(c, bits);
      }
      const i = p - c * CHUNK_PAGES;
      bits[i >>> 5]! |= 1 << (i & 31);
    }
  }

  /**
   * Calls fn(page) for each page in the set that overlaps [iova, end), in
   * no particular order; removes them when `clear`.
   */
  each(iova: number, end: number, clear: boolean, fn: (page: number) => void): void {
    const first = Math.floor(iova / this.pageSize);
    const last = Math.floor((end - 1) / this.pageSize);
    for (const [c, bits] of this.#chunks) {
      const base = c * CHUNK_PAGES;
      if (base + CHUNK_PAGES <= first || base > last) continue;
      let left = 0;
      for (let w = 0; w < WORDS; w++) {
        let word = bits[w]!;
        if (word === 0) continue;
        for (let b = 0; word !== 0 && b < 32; b++, word >>>= 1) {
          if ((word & 1) === 0) continue;
          const page = base + w * 32 + b;
          if (page < first || page > last) continue;
          fn(page);
          if (clear) bits[w]! &= ~(1 << b);
        }
        if (bits[w] !== 0) left++;
      }
      if (clear && left === 0) this.#chunks.delete(c);
    }
  }

  clear(): void {
    this.#chunks.clear();
  }
}

/** What DMA_LOGGING_START asked for, checked. */
interface ActiveLog {
  pageSize: number;
  /** sorted; null: everything */
  ranges: DirtyRange[] | null;
  pages: PageSet;
}

/** The dirty log of one DMA access: see the module comment. */
export class DirtyLog {
  #log: ActiveLog | null = null;
  /** pages of writable views, until unmapped */
  readonly #pinned = new PageSet(MIN_DIRTY_PAGE);

  /** True between start() and stop(). */
  get logging(): boolean {
    return this.#log !== null;
  }

  /**
   * DMA_LOGGING_START: logs writes to `ranges` (none: every write) at
   * `pageSize` granularity, and returns the page size used (at least 4
   * KiB). EINVAL for a page size that is not a power of two, ranges not
   * aligned to it, empty or overlapping; E2BIG past MAX_LOG_RANGES;
   * EOVERFLOW for a range beyond 2^53; EBUSY while already logging.
   */
  start(pageSize: number, ranges: readonly DirtyRange[]): number {
    if (this.#log !== null) throw new VfioError('EBUSY', 'DMA logging has already started');
    if (!isPowerOfTwo(pageSize)) throw new VfioError('EINVAL', `DMA logging page size ${pageSize} is not a power of two`);
    const size = Math.max(pageSize, MIN_DIRTY_PAGE);
    if (ranges.length > MAX_LOG_RANGES) throw new VfioError('E2BIG', `DMA logging takes at most ${MAX_LOG_RANGES} ranges, not ${ranges.length}`);
    const sorted = [...ranges].sort((a, b) => a.iova - b.iova);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      if (!Number.isSafeInteger(r.iova) || !Number.isSafeInteger(r.length) || r.iova < 0 || r.length <= 0) {
        throw new VfioError('EINVAL', `DMA logging range [${r.iova}, +${r.length}) is empty or not a whole number`);
      }
      if (r.iova + r.length > MAX_IOVA_END) throw new VfioError('EOVERFLOW', 'a DMA logging range ends beyond 2^53');
      if (r.iova % pageSize !== 0 || r.length % pageSize !== 0) {
        throw new VfioError(
          'EINVAL',
          `DMA logging range [0x${r.iova.toString(16)}, +0x${r.length.toString(16)}) is not aligned to the page size ${pageSize}`,
        );
      }
      const prev = sorted[i - 1];
      if (prev && prev.iova + prev.length > r.iova) throw new VfioError('EINVAL', 'DMA logging ranges overlap');
    }
    this.#log = { pageSize: size, ranges: sorted.length === 0 ? null : sorted, pages: new PageSet(size) };
    return size;
  }

  /** DMA_LOGGING_STOP: forgets what was logged. Nothing to do when not logging. */
  stop(): void {
    this.#log = null;
  }

  /** The device wrote [iova, iova+length). */
  wrote(iova: number, length: number): void {
    const log = this.#log;
    if (log === null || length <= 0) return;
    if (log.ranges === null) {
      log.pages.add(iova, length);
      return;
    }
    const end = iova + length;
    for (const r of log.ranges) {
      if (r.iova >= end) break;
      const from = Math.max(iova, r.iova);
      const to = Math.min(end, r.iova + r.length);
      if (from < to) log.pages.add(from, to - from);
    }
  }

  /** The device took a writable view of [iova, iova+length): dirty until unmapped. */
  viewed(iova: number, length: number): void {
    if (length > 0) this.#pinned.add(iova, length);
  }

  /** [iova, iova+length) was unmapped: views of it are gone. */
  unmapped(iova: number, length: number): void {
    this.#pinned.each(iova, iova + length, true, () => {});
  }

  /**
   * DMA_LOGGING_REPORT: a bitmap of [iova, iova+length) in `pageSize`
   * units (bit i of u64 word i/64 for the page at iova + i*pageSize), set
   * where the device wrote since the last report or holds a writable view;
   * what it reports of writes is cleared. EINVAL when not logging or for a
   * page size below 4 KiB or not a power of two; EOVERFLOW beyond 2^53;
   * E2BIG when the bitmap would exceed `maxBytes`.
   */
  report(iova: number, length: number, pageSize: number, maxBytes: number): Uint8Array {
    const log = this.#log;
    if (log === null) throw new VfioError('EINVAL', 'DMA logging has not started');
    if (!isPowerOfTwo(pageSize) || pageSize < MIN_DIRTY_PAGE) {
      throw new VfioError('EINVAL', `DMA logging report page size ${pageSize} is not a power of two of at least ${MIN_DIRTY_PAGE}`);
    }
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(length) || iova < 0 || length <= 0) {
      throw new VfioError('EINVAL', `DMA logging report range [${iova}, +${length}) is empty`);
    }
    if (iova + length > MAX_IOVA_END) throw new VfioError('EOVERFLOW', 'the DMA logging report range ends beyond 2^53');
    const bytes = bitmapBytes(length, pageSize);
    if (bytes > maxBytes)
      throw new VfioError('E2BIG', `a bitmap of [0x${iova.toString(16)}, +0x${length.toString(16)}) takes ${bytes} bytes, more than ${maxBytes}`);
    const bitmap = new Uint8Array(bytes);
    const end = iova + length;
    const setPages =
      (size: number) =>
      (page: number): void => {
        const from = Math.max(iova, page * size);
        const to = Math.min(end, (page + 1) * size);
        const firstBit = Math.floor((from - iova) / pageSize);
        const lastBit = Math.floor((to - 1 - iova) / pageSize);
        for (let b = firstBit; b <= lastBit; b++) bitmap[b >>> 3]! |= 1 << (b & 7);
      };
    log.pages.each(iova, end, true, setPages(log.pageSize));
    this.#pinned.each(iova, end, false, setPages(MIN_DIRTY_PAGE));
    return bitmap;
  }
}

/** Bytes of a report bitmap: one bit per page, whole u64 words. */
export function bitmapBytes(length: number, pageSize: number): number {
  return Math.ceil(Math.ceil(length / pageSize) / 64) * 8;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
