/**
 * A bound on the bytes a device holds for requests in flight (bounce
 * buffers between guest memory and the backing file): a request waits, in
 * arrival order, until its bytes fit. The waiters are bounded by the
 * queue's size, since a driver cannot have more chains outstanding.
 */
export class ByteGate {
  #used = 0;
  readonly #waiting: Array<{ bytes: number; go: () => void }> = [];

  constructor(readonly max: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Resolves once `bytes` (at most max) are held for the caller; release() them after. */
  take(bytes: number): Promise<void> {
    if (this.#waiting.length === 0 && this.#used + bytes <= this.max) {
      this.#used += bytes;
      return Promise.resolve();
    }
    return new Promise((go) => this.#waiting.push({ bytes, go }));
  }

  release(bytes: number): void {
    this.#used -= bytes;
    while (this.#waiting.length > 0 && this.#used + this.#waiting[0]!.bytes <= this.max) {
      const next = this.#waiting.shift()!;
      this.#used += next.bytes;
      next.go();
    }
  }
}
