/**
 * Definitions without a daemon. Like mdevctl, which edits its config files
 * whether or not anything runs, `define`, `undefine`, `modify` and
 * `list --defined` work when no daemon is running: the command line opens
 * the store itself and runs the same service code over a bus that holds the
 * built-in parents (so parents and types are checked the same way) and no
 * running device. The daemon picks the changes up at its next start.
 *
 * Verbs that need running devices or live counts (start, stop, list, types)
 * still need the daemon.
 */
import { existsSync } from 'node:fs';
import type { DaemonPaths } from '../daemon/paths.js';
import type { ArgsOf, ControlOp, ResultOf } from '../daemon/protocol.js';

/** True for requests that only touch definitions. */
export function worksOffline(op: ControlOp, args: ArgsOf<ControlOp>): boolean {
  return op === 'define' || op === 'undefine' || op === 'modify' || (op === 'list' && (args as ArgsOf<'list'>).defined === true);
}

/** Runs such a request against the store directly. */
export async function callOffline<O extends ControlOp>(paths: DaemonPaths, op: O, args: ArgsOf<O>): Promise<ResultOf<O>> {
  // Only define creates the database; reading or editing a store that does
  // not exist finds nothing, and leaves no empty file behind.
  // Loaded here, not at startup: most commands never need the store, the drivers or their native code.
  const [{ VfioCore }, { MdevBus }, { builtinParents }, { ensurePrivateDir }, { MdevService }, { DefinitionStore }] = await Promise.all([
    import('../core/vfio-core.js'),
    import('../mdev/index.js'),
    import('../daemon/parents.js'),
    import('../daemon/private-dir.js'),
    import('../daemon/service.js'),
    import('../daemon/store.js'),
  ]);
  let file = paths.dbFile;
  if (!existsSync(file)) {
    if (op === 'define') ensurePrivateDir(paths.stateDir);
    else file = ':memory:';
  }
  const store = DefinitionStore.open(file);
  try {
    const bus = new MdevBus({ core: new VfioCore() });
    for (const p of builtinParents()) bus.registerParent(p);
    return (await new MdevService({ store, bus }).handle(op, args)) as ResultOf<O>;
  } finally {
    store.close();
  }
}
