/**
 * The parents a daemon serves: one per driver uvfio ships. Each may name a
 * default type, of which a fresh store gets one auto-started definition.
 */
import type { MdevParentOptions } from '../mdev/index.js';

export interface BuiltinParent extends MdevParentOptions {
  /** Seeded as one auto-start definition when the store is created. */
  defaultType?: string;
}

/** Every parent uvfio ships, freshly built (drivers keep per-parent state). */
export function builtinParents(): BuiltinParent[] {
  return [];
}
