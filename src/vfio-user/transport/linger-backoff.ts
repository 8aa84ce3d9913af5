/**
 * When lingering (UnixSocket.setLinger) is worth trying. A linger that
 * finds the loop busy (another peer's bytes, a timer) has cost a wait for
 * nothing, and with several busy peers the next one likely will too. So
 * after one, the next lingers are skipped: the penalty doubles (plus one)
 * with each busy linger, up to MAX_LINGER_SKIPS readable events, and
 * halves with each linger that gets its bytes. (Resetting it on a success
 * instead let 4 busy clients still find the loop busy in half their
 * lingers.) One per thread, as the loop is; a socket keeps one of its own,
 * capped lower, for the waits of its large writes (UnixSocket's sendOn).
 */
export class LingerBackoff {
  #skips = 0;
  #penalty = 0;
  readonly #max: number;

  /** `max`: the most tries skipped after a run of busy ones. */
  constructor(max = MAX_LINGER_SKIPS) {
    this.#max = max;
  }

  /** Whether a readable event may linger; false also counts the event as one skipped. */
  tryNow(): boolean {
    if (this.#skips === 0) return true;
    this.#skips--;
    return false;
  }

  /** A linger found the loop busy. */
  busy(): void {
    this.#penalty = Math.min(this.#penalty * 2 + 1, this.#max);
    this.#skips = this.#penalty;
  }

  /** A linger got its bytes. */
  got(): void {
    this.#penalty >>= 1;
  }
}

/** The most readable events skipped after a busy linger. */
export const MAX_LINGER_SKIPS = 255;

/** This thread's: every socket's lingers share one loop. */
export const lingerBackoff = new LingerBackoff();
