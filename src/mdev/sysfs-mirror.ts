/**
 * A real directory tree that mirrors a SysfsView (so `ls`, `cat` and tools
 * that read /sys-shaped trees see the bus). Read-only: it reflects, it
 * does not take writes. Implemented in the next step.
 */
import { VfioError } from '../core/errors.js';
import type { SysfsView } from './sysfs-view.js';

export class SysfsMirror {
  private constructor(
    readonly view: SysfsView,
    readonly dir: string,
  ) {}

  /** Builds the tree under `dir` and starts tracking the bus. */
  static async start(view: SysfsView, dir: string): Promise<SysfsMirror> {
    void view;
    throw new VfioError('ENOSYS', `mirroring to ${dir} is not implemented yet`);
  }

  /** Resolves once the tree reflects every change seen so far. */
  async flush(): Promise<void> {}

  /** Stops tracking; the tree stays as it is. */
  async close(): Promise<void> {}
}
