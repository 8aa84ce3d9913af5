/** Small helpers shared by the mdev tests. */
import assert from 'node:assert/strict';
import { VfioCore, VfioError } from '../../src/core/index.js';

/** A core whose request back-off is 1 ms. */
export function fastCore(): VfioCore {
  return new VfioCore({ requestBackoffMs: () => 1 });
}

/** The n-th test UUID (canonical). */
export function uuidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export async function rejectsWith(p: Promise<unknown>, code: string): Promise<VfioError> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return e instanceof VfioError && e.code === code;
  });
  return caught as VfioError;
}

/**
 * Named gates for driver ops: point(label) parks until open(label). Lets a
 * test hold a probe or a remove in flight while it does something else.
 */
export class Gates {
  private readonly parked = new Map<string, () => void>();
  private readonly opened = new Set<string>();

  readonly point = (label: string): Promise<void> => {
    if (this.opened.has(label) || this.opened.has('*')) return Promise.resolve();
    return new Promise((resolve) => this.parked.set(label, resolve));
  };

  isParked(label: string): boolean {
    return this.parked.has(label);
  }

  /** Lets the op parked (now or later) at `label` go; '*' opens every gate from now on. */
  open(label: string): void {
    this.opened.add(label);
    if (label === '*') {
      for (const r of this.parked.values()) r();
      this.parked.clear();
      return;
    }
    this.parked.get(label)?.();
    this.parked.delete(label);
  }
}

/** Lets pending microtasks and one macrotask turn run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
