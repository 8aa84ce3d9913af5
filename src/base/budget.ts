/**
 * A resource a peer can make us hold, counted against a limit. A budget may
 * sit inside a wider one (a client's share inside the whole daemon's): a
 * take succeeds only when every level has room, and then counts at every
 * level. Past a limit the take fails with OverBudget, a VfioError that
 * names the limit, so whoever serves the peer can tell it apart (and log
 * it naming the peer) from an ordinary refusal.
 */
import { VfioError, type ErrnoName } from './errors.js';

/** A take refused because a limit would be passed; `limit` is its name (`--limit NAME=…`). */
export class OverBudget extends VfioError {
  constructor(
    code: ErrnoName,
    readonly limit: string,
    message: string,
  ) {
    super(code, message);
  }
}

export class Budget {
  #used = 0;

  /**
   * @param limit   name of the limit (as the command line and the docs say it)
   * @param max     how much may be held at once
   * @param parent  a wider budget every take also counts against
   * @param errno   what a take past the limit fails with (default ENOSPC)
   */
  constructor(
    readonly limit: string,
    readonly max: number,
    readonly parent: Budget | null = null,
    readonly errno: ErrnoName = 'ENOSPC',
  ) {}

  /** Held now. */
  get used(): number {
    return this.#used;
  }

  /** Room left, counting every wider budget. */
  get room(): number {
    const mine = this.max - this.#used;
    return this.parent === null ? mine : Math.min(mine, this.parent.room);
  }

  /**
   * Counts `n` more of `what` (a phrase for the message: "DMA mappings");
   * OverBudget, with nothing counted, when this or a wider budget would pass
   * its limit. `slack` lets the count pass the limits by that much, for
   * what replaces as much that is released right after.
   */
  take(n: number, what: string, slack = 0): void {
    for (let b: Budget | null = this; b !== null; b = b.parent) {
      if (b.#used + n > b.max + slack) {
        throw new OverBudget(b.errno, b.limit, `${what}: ${b.#used} held, ${n} more would pass the limit ${b.limit} of ${b.max}`);
      }
    }
    for (let b: Budget | null = this; b !== null; b = b.parent) b.#used += n;
  }

  /** Gives back `n` taken before (never more than is held). */
  release(n: number): void {
    for (let b: Budget | null = this; b !== null; b = b.parent) b.#used = Math.max(0, b.#used - n);
  }
}
