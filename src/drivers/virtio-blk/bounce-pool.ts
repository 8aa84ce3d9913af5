/**
 * Bounce buffers reused from one request to the next: a fresh 1 MiB
 * buffer per request is external memory the garbage collector chases
 * (profiled: most of the daemon's busy time in a sequential read). Sizes
 * are rounded up to powers of two from 4 KiB; what is kept is bounded
 * (`maxKeptBytes`), the rest left to the collector.
 */
const MIN_BUCKET = 4096;

export class BouncePool {
  readonly #free = new Map<number, Uint8Array[]>();
  #kept = 0;

  constructor(readonly maxKeptBytes: number) {}

  /** What a buffer of `length` bytes really holds: the power of two it is rounded up to. */
  static sizeOf(length: number): number {
    return bucketOf(length);
  }

  /** Bytes held for reuse now. */
  get keptBytes(): number {
    return this.#kept;
  }

  /** A buffer of `length` bytes (a view of a pooled one; contents undefined). */
  take(length: number): Uint8Array {
    const size = bucketOf(length);
    const reused = this.#free.get(size)?.pop();
    if (reused) this.#kept -= size;
    return (reused ?? Buffer.allocUnsafeSlow(size)).subarray(0, length);
  }

  /** Gives back what take() returned, once nothing uses it any more. */
  give(buf: Uint8Array): void {
    const whole = new Uint8Array(buf.buffer, 0, buf.buffer.byteLength);
    const size = whole.length;
    if (size !== bucketOf(size) || this.#kept + size > this.maxKeptBytes) return;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, (list = []));
    list.push(whole);
    this.#kept += size;
  }
}

function bucketOf(length: number): number {
  return Math.max(MIN_BUCKET, 2 ** Math.ceil(Math.log2(Math.max(length, 1))));
}
