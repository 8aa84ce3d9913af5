/**
 * What the types of one parent share: a number of units (mtty's ports,
 * mbochs's bytes of video memory, mdpy's devices) that a device takes its
 * share of when probed and gives back when released. Every type's
 * available_instances is how many more of its shares fit in what is left.
 * A share is given back through the PoolShare that took it, once, so a
 * pool can never be given more than was taken.
 */
import { VfioError, type ErrnoName } from '../base/errors.js';

export interface SharedPoolOptions {
  /** Units in the pool: a whole number, 0 or more. */
  size: number;
  /** What is pooled, for errors: `mtty ports`, `video memory`. */
  name: string;
  /** Writes an amount for errors: `16 MiB`. Default: the number. */
  unit?: (units: number) => string;
  /** The errno when a share does not fit. Default EUSERS (no instance left). */
  exhausted?: ErrnoName;
}

/** One device's share of a pool: give() it back once, at release. */
export class PoolShare {
  #giveBack: (() => void) | null;

  /** @internal SharedPool.take() */
  constructor(
    /** Units held. */
    readonly units: number,
    giveBack: () => void,
  ) {
    this.#giveBack = giveBack;
  }

  /** Gives the units back to the pool; later calls do nothing. */
  give(): void {
    const giveBack = this.#giveBack;
    this.#giveBack = null;
    giveBack?.();
  }
}

export class SharedPool {
  readonly size: number;
  #free: number;
  readonly name: string;
  readonly #unit: (units: number) => string;
  readonly #exhausted: ErrnoName;

  constructor(options: SharedPoolOptions) {
    const { size } = options;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new VfioError('EINVAL', `a pool's size must be a whole number, 0 or more, not ${size}`);
    }
    this.size = size;
    this.#free = size;
    this.name = options.name;
    this.#unit = options.unit ?? String;
    this.#exhausted = options.exhausted ?? 'EUSERS';
  }

  /** Units no device holds. */
  get free(): number {
    return this.#free;
  }

  /** Units the devices hold. */
  get used(): number {
    return this.size - this.#free;
  }

  /** How many more shares of `units` fit in what is left. */
  available(units: number): number {
    checkShare(units);
    return Math.floor(this.#free / units);
  }

  /**
   * Takes `units` for `who` (a type id, in the error), synchronously, as a
   * probe must. When they do not fit, nothing is taken and the error has
   * the pool's errno.
   */
  take(units: number, who: string): PoolShare {
    checkShare(units);
    if (units > this.#free) {
      const u = this.#unit;
      throw new VfioError(this.#exhausted, `${this.name}: ${who} needs ${u(units)}, ${u(this.#free)} of ${u(this.size)} left`);
    }
    this.#free -= units;
    return new PoolShare(units, () => {
      this.#free += units;
    });
  }
}

function checkShare(units: number): void {
  if (!Number.isSafeInteger(units) || units <= 0) {
    throw new VfioError('EINVAL', `a pool share must be a whole number of units, 1 or more, not ${units}`);
  }
}
