/**
 * A seeded scheduler that resumes a random *burst* of parked tasks per
 * step, in random order, before letting microtasks run. The lead's
 * Scheduler (test/support) resumes one task per step and drains microtasks
 * in between, so two tasks never meet inside the code under test unless
 * that code parks; here their synchronous sections and continuations
 * interleave the way concurrent requests arriving in one event-loop turn
 * do. That is where a check-then-await-then-act race in the bus would show.
 */
import type { Prng } from '../support/prng.js';

interface Parked {
  label: string;
  resume: () => void;
}

export class BurstScheduler {
  private parked: Parked[] = [];
  steps = 0;

  constructor(
    readonly rng: Prng,
    /** most tasks resumed in one step */
    readonly maxBurst = 3,
  ) {}

  /** Parks the calling task until a step picks it. */
  point(label = 'point'): Promise<void> {
    return new Promise((resume) => this.parked.push({ label, resume }));
  }

  /** Like point(), but also resumes (and withdraws) when `wake` settles first: a timer's stand-in. */
  pointOrWake(label: string, wake: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      const entry: Parked = { label, resume: () => resolve() };
      this.parked.push(entry);
      const withdraw = (): void => {
        const i = this.parked.indexOf(entry);
        if (i >= 0) this.parked.splice(i, 1);
        resolve();
      };
      void wake.then(withdraw, withdraw);
    });
  }

  parkedLabels(): string[] {
    return this.parked.map((p) => p.label);
  }

  /** Lets every queued microtask run. */
  static settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Resumes 1..maxBurst parked tasks chosen at random; false when none was parked. */
  async step(): Promise<boolean> {
    await BurstScheduler.settle();
    if (this.parked.length === 0) return false;
    const n = 1 + this.rng.int(Math.min(this.maxBurst, this.parked.length));
    const chosen: Parked[] = [];
    for (let i = 0; i < n; i++) chosen.push(...this.parked.splice(this.rng.int(this.parked.length), 1));
    this.steps++;
    for (const entry of chosen) entry.resume();
    await BurstScheduler.settle();
    return true;
  }
}
