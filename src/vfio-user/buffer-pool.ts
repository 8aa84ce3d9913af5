/**
 * Large buffers the process lends for one message at a time, instead of
 * each session keeping (or allocating) its own: reply buffers for large
 * reads (session.ts), and buffers a large message that arrives in pieces
 * is put together in (framer.ts). A pool keeps at most `kept` buffers
 * between uses, the largest, whatever the number of clients: an idle
 * client that once moved 1 MiB holds nothing for it.
 */
export class BufferPool {
  readonly #free: Uint8Array[] = [];

  constructor(
    /** buffers kept between uses */
    readonly kept: number,
  ) {}

  /** A buffer of at least `size` bytes, the caller's until it gives it back. */
  borrow(size: number): Uint8Array {
    const free = this.#free;
    for (let i = 0; i < free.length; i++) {
      if (free[i]!.length >= size) return free.splice(i, 1)[0]!;
    }
    return new Uint8Array(size);
  }

  /** Gives back a borrowed buffer; the caller must not touch it again. The largest `kept` are kept. */
  give(buf: Uint8Array): void {
    const free = this.#free;
    if (free.length < this.kept) {
      free.push(buf);
      return;
    }
    let smallest = 0;
    for (let i = 1; i < free.length; i++) if (free[i]!.length < free[smallest]!.length) smallest = i;
    if (free[smallest]!.length < buf.length) free[smallest] = buf;
  }
}

/** Reply buffers too large for a session to keep (over 16 KiB). */
export const replyBuffers = new BufferPool(2);

/** Buffers large messages are put together in when they arrive in pieces. */
export const messageBuffers = new BufferPool(2);
