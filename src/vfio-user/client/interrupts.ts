/**
 * Interrupts as a client receives them: one eventfd per IRQ of a range,
 * handed to the server with SET_IRQS, that the server signals. Each line
 * can be awaited (the next signal) or polled.
 */
import { VfioError } from '../../base/errors.js';
import { EventFd } from '../../native/index.js';

/** One interrupt (an index's sub-index) and its eventfd. */
export class InterruptLine {
  readonly eventfd = EventFd.create();
  /** Signals seen so far (by next() or take()). */
  total = 0n;
  #waiters: { resolve(n: bigint): void; reject(e: VfioError): void; timer: NodeJS.Timeout | undefined }[] = [];

  constructor(
    readonly index: number,
    readonly sub: number,
  ) {}

  /** The signals that arrived since the last look, without waiting (0 when none). */
  take(): bigint {
    const n = this.eventfd.read() ?? 0n;
    this.total += n;
    return n;
  }

  /** Resolves with the count of the next signal(s); ETIMEDOUT after `timeoutMs` (default 5 s). */
  next(timeoutMs = 5000): Promise<bigint> {
    const ready = this.take();
    if (ready > 0n) return Promise.resolve(ready);
    return new Promise<bigint>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.timer !== timer);
        if (this.#waiters.length === 0) this.eventfd.onSignal(null);
        reject(new VfioError('ETIMEDOUT', `no interrupt on index ${this.index} sub ${this.sub} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push({ resolve, reject, timer });
      if (this.#waiters.length === 1) {
        this.eventfd.onSignal((count) => {
          this.total += count;
          const waiters = this.#waiters;
          this.#waiters = [];
          this.eventfd.onSignal(null);
          for (const w of waiters) {
            clearTimeout(w.timer);
            w.resolve(count);
          }
        });
      }
    });
  }

  /** Closes the eventfd; waiters fail with ENOTCONN. */
  close(): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new VfioError('ENOTCONN', 'the interrupt line was closed'));
    }
    this.#waiters = [];
    this.eventfd.close();
  }
}

/** The lines of one SET_IRQS range [start, start+count) of an IRQ index. */
export class InterruptSet {
  readonly lines: readonly InterruptLine[];

  constructor(
    readonly index: number,
    readonly start: number,
    count: number,
  ) {
    const lines: InterruptLine[] = [];
    try {
      for (let i = 0; i < count; i++) lines.push(new InterruptLine(index, start + i));
    } catch (err) {
      for (const l of lines) l.close();
      throw err;
    }
    this.lines = lines;
  }

  /** The line of sub-index `sub` (absolute, not relative to start). */
  line(sub: number): InterruptLine {
    const l = this.lines[sub - this.start];
    if (l === undefined) throw new VfioError('EINVAL', `sub-index ${sub} is outside [${this.start}, ${this.start + this.lines.length})`);
    return l;
  }

  get fds(): number[] {
    return this.lines.map((l) => l.eventfd.fd);
  }

  close(): void {
    for (const l of this.lines) l.close();
  }
}
