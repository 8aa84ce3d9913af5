/**
 * A deterministic scheduler for async code. Tasks call `point()` wherever
 * another task could run in real life (inside a driver op, between client
 * actions, in place of a timer); the scheduler resumes exactly one parked
 * task per step (or a burst of several), chosen by a seeded PRNG, and lets
 * the microtask queue run dry before the next step. So a seed fixes the interleaving, a failure
 * replays exactly, and many seeds explore many interleavings on purpose.
 *
 * Every promise in the code under test must settle through microtasks or
 * through point(): a real timer or I/O would escape the scheduler.
 */
import type { Prng } from './prng.js';

interface Parked {
  label: string;
  resume: () => void;
}

export interface SchedulerOptions {
  /**
   * Resume up to this many parked tasks per step (at least 1, chosen at
   * random). With 1, a resumed task runs alone until it parks again, which
   * hides check-then-await races: nothing else can run at its awaits. With
   * more, the resumed tasks' continuations interleave at every await, as
   * they would in a real event loop.
   */
  burst?: number;
}

export class Scheduler {
  private parked: Parked[] = [];
  private readonly burst: number;
  /** Steps taken so far. */
  steps = 0;

  constructor(
    readonly rng: Prng,
    options: SchedulerOptions = {},
  ) {
    this.burst = Math.max(1, options.burst ?? 1);
  }

  /** Parks the calling task until the scheduler picks it. */
  point(label = 'point'): Promise<void> {
    return new Promise((resume) => {
      this.parked.push({ label, resume });
    });
  }

  /**
   * Like point(), but also resumes when `wake` settles first; the parked
   * entry is withdrawn then, so the scheduler never wastes a step on it.
   * This is what replaces a timer (`setTimeout` raced against an event).
   */
  pointOrWake(label: string, wake: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      const entry: Parked = { label, resume: () => resolve() };
      this.parked.push(entry);
      void wake.then(
        () => this.withdraw(entry, resolve),
        () => this.withdraw(entry, resolve),
      );
    });
  }

  /** Number of parked tasks. */
  get pending(): number {
    return this.parked.length;
  }

  /** Labels of the parked tasks, for failure messages. */
  parkedLabels(): string[] {
    return this.parked.map((p) => p.label);
  }

  /** Lets every queued microtask run (one macrotask turn drains them all). */
  static settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Resumes one parked task chosen at random and runs until quiet. Returns
   * false when nothing was parked.
   */
  async step(): Promise<boolean> {
    await Scheduler.settle();
    if (this.parked.length === 0) return false;
    const n = 1 + this.rng.int(Math.min(this.burst, this.parked.length));
    this.steps++;
    for (let i = 0; i < n; i++) {
      const [entry] = this.parked.splice(this.rng.int(this.parked.length), 1);
      entry!.resume();
    }
    await Scheduler.settle();
    return true;
  }

  private withdraw(entry: Parked, resolve: () => void): void {
    const i = this.parked.indexOf(entry);
    if (i >= 0) this.parked.splice(i, 1);
    resolve();
  }
}
