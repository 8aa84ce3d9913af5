/**
 * The lock of a device set. Every op of every device of a set runs under it,
 * one at a time, in arrival order: open_device/close_device, hot reset and
 * the ordinary ops alike. The kernel only serialises open/close/reset on its
 * dev_set mutex and leaves drivers to lock the rest themselves; uvfio gives
 * drivers the stronger promise that nothing of their set ever overlaps, which
 * costs nothing for synchronous ops (JavaScript runs them to completion) and
 * removes a whole class of driver races for asynchronous ones.
 *
 * Synchronous ops take a fast path: when the lock is free they run at once
 * and their result is returned as is, with no promise and no microtask; the
 * token that proves the hold is their one allocation. Ops that need no
 * token (a device's region reads and writes) take enter()/leave(), which
 * allocate nothing at all.
 */
import { isPromiseLike } from './maybe-async.js';

/**
 * Proof that the caller holds a set lock. Functions that need the lock take
 * one as a parameter, so the requirement is visible in the signature and
 * checked at run time (the kernel's lockdep_assert_held).
 */
export class SetLockToken {
  /** @internal */
  constructor(readonly lock: SetLock) {}
  /**
   * Throws unless this token is the live holder of `lock`: it fails for
   * another lock, and for this one once the hold that made the token ended.
   */
  assertHolds(lock: SetLock): void {
    if (!lock.isHeldBy(this)) throw new Error('set lock is not held by this token');
  }
}

type Waiter = () => void;

export class SetLock {
  // The token of the current holder, null when free. Only acquisition and
  // release change it, so a token proves a hold (SetLockToken.assertHolds).
  #holder: SetLockToken | null = null;
  /** The holder while enter() holds the lock: never handed out, so never a stale proof. */
  readonly #entered: SetLockToken = new SetLockToken(this);
  private readonly waiters: Waiter[] = [];
  /**
   * 1 while the lock is not idle (held, or waited for), else 0: what the
   * native layer reads before it answers a region access itself (see
   * vfio-user's RegionAnswers), where `idle` cannot be asked.
   */
  readonly busyCell = new Int32Array(1);

  /** True when nobody holds the lock and nobody waits for it. */
  get idle(): boolean {
    return this.#holder === null && this.waiters.length === 0;
  }

  /** True when `token` is the current holder's. */
  isHeldBy(token: SetLockToken): boolean {
    return this.#holder === token;
  }

  /**
   * Runs fn under the lock. Returns fn's value directly when the lock was
   * free and fn was synchronous; otherwise a promise. Errors propagate the
   * same way (thrown, or rejected).
   */
  run<T>(fn: (token: SetLockToken) => T | Promise<T>): T | Promise<T> {
    if (this.idle) {
      const token = new SetLockToken(this);
      this.#holder = token;
      this.busyCell[0] = 1;
      return this.invoke(token, fn);
    }
    return this.acquire().then((token) => this.invoke(token, fn));
  }

  // Runs fn as the holder of token; releases at once when fn was
  // synchronous (or threw), when its promise settles otherwise.
  private invoke<T>(token: SetLockToken, fn: (token: SetLockToken) => T | Promise<T>): T | Promise<T> {
    let result: T | Promise<T>;
    try {
      result = fn(token);
    } catch (err) {
      this.release(token);
      throw err;
    }
    if (!isPromiseLike(result)) {
      this.release(token);
      return result;
    }
    return this.finishAsync(token, result);
  }

  /**
   * Takes the lock at once if nobody holds it or waits for it, for a caller
   * that needs no token; true when taken. The caller then runs its op and
   * must end the hold with leave() (its result) or leaveAfterThrow().
   * Allocates nothing: the hot path of region reads and writes.
   */
  enter(): boolean {
    if (!this.idle) return false;
    this.#holder = this.#entered;
    this.busyCell[0] = 1;
    return true;
  }

  /** Ends a hold taken by enter(): now for a value, once it settles for a promise (returned with its outcome unchanged). */
  leave<T>(result: T | Promise<T>): T | Promise<T> {
    if (!isPromiseLike(result)) {
      this.release(this.#entered);
      return result;
    }
    return this.finishAsync(this.#entered, result);
  }

  /** Ends a hold taken by enter() whose op threw. */
  leaveAfterThrow(): void {
    this.release(this.#entered);
  }

  /** Like run(), but always a promise: for callers that await anyway. */
  async runAsync<T>(fn: (token: SetLockToken) => T | Promise<T>): Promise<T> {
    return this.run(fn);
  }

  private async finishAsync<T>(token: SetLockToken, result: T | Promise<T>): Promise<T> {
    try {
      return await result;
    } finally {
      this.release(token);
    }
  }

  private acquire(): Promise<SetLockToken> {
    // busyCell is 1 already: only a lock that is not idle is waited for.
    return new Promise((resolve) => {
      this.waiters.push(() => {
        const token = new SetLockToken(this);
        this.#holder = token;
        resolve(token);
      });
    });
  }

  private release(token: SetLockToken): void {
    if (this.#holder !== token) throw new Error('set lock released by a non-holder');
    this.#holder = null;
    const next = this.waiters.shift();
    if (next) next();
    else this.busyCell[0] = 0;
  }
}
