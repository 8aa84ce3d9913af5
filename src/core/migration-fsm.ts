/**
 * The VFIO migration v2 state machine (include/uapi/linux/vfio.h), as pure
 * functions: which states a device with given flags has, and the next arc
 * on the way from one state to another, exactly as the kernel's
 * vfio_mig_get_next_state() walks it. The core takes a multi-step
 * transition one arc at a time through these; a driver never sees anything
 * but a single allowed arc.
 *
 * The rules, from the uAPI: the shortest path; no saving-group state
 * (PRE_COPY, PRE_COPY_P2P, STOP_COPY) in the interior of a path; arcs
 * through states the device lacks are skipped over (as if they were not
 * there); STOP_COPY → PRE_COPY(_P2P) and everything into or out of ERROR
 * are refused.
 */
import { VfioError } from '../base/errors.js';
import { MigrationFlags, MigState, type MigStateValue } from '../base/uapi.js';

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = MigState;

/** Number of states (vfio_device_mig_state: 0..7). */
export const MIG_STATE_COUNT = 8;

const NAMES = ['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING', 'RUNNING_P2P', 'PRE_COPY', 'PRE_COPY_P2P'] as const;

/** The uAPI name of a state ("STOP_COPY"), or its number for one that does not exist. */
export function migStateName(state: number): string {
  return NAMES[state] ?? `state ${state}`;
}

/** True for 0..7. */
export function isMigState(state: number): state is MigStateValue {
  return Number.isInteger(state) && state >= 0 && state < MIG_STATE_COUNT;
}

/**
 * NEXT[from][to]: the first arc from `from` on the way to `to`, for a device
 * that has every optional state (the kernel's vfio_from_fsm_table).
 */
const NEXT: readonly (readonly MigStateValue[])[] = (() => {
  const t: MigStateValue[][] = [];
  const row = (from: MigStateValue, to: Record<MigStateValue, MigStateValue>): void => {
    t[from] = NAMES.map((_, s) => to[s as MigStateValue]);
  };
  row(STOP, {
    [STOP]: STOP,
    [RUNNING]: RUNNING_P2P,
    [PRE_COPY]: RUNNING_P2P,
    [PRE_COPY_P2P]: RUNNING_P2P,
    [STOP_COPY]: STOP_COPY,
    [RESUMING]: RESUMING,
    [RUNNING_P2P]: RUNNING_P2P,
    [ERROR]: ERROR,
  });
  row(RUNNING, {
    [STOP]: RUNNING_P2P,
    [RUNNING]: RUNNING,
    [PRE_COPY]: PRE_COPY,
    [PRE_COPY_P2P]: RUNNING_P2P,
    [STOP_COPY]: RUNNING_P2P,
    [RESUMING]: RUNNING_P2P,
    [RUNNING_P2P]: RUNNING_P2P,
    [ERROR]: ERROR,
  });
  row(PRE_COPY, {
    [STOP]: RUNNING,
    [RUNNING]: RUNNING,
    [PRE_COPY]: PRE_COPY,
    [PRE_COPY_P2P]: PRE_COPY_P2P,
    [STOP_COPY]: PRE_COPY_P2P,
    [RESUMING]: RUNNING,
    [RUNNING_P2P]: RUNNING,
    [ERROR]: ERROR,
  });
  row(PRE_COPY_P2P, {
    [STOP]: RUNNING_P2P,
    [RUNNING]: RUNNING_P2P,
    [PRE_COPY]: PRE_COPY,
    [PRE_COPY_P2P]: PRE_COPY_P2P,
    [STOP_COPY]: STOP_COPY,
    [RESUMING]: RUNNING_P2P,
    [RUNNING_P2P]: RUNNING_P2P,
    [ERROR]: ERROR,
  });
  row(STOP_COPY, {
    [STOP]: STOP,
    [RUNNING]: STOP,
    [PRE_COPY]: ERROR,
    [PRE_COPY_P2P]: ERROR,
    [STOP_COPY]: STOP_COPY,
    [RESUMING]: STOP,
    [RUNNING_P2P]: STOP,
    [ERROR]: ERROR,
  });
  row(RESUMING, {
    [STOP]: STOP,
    [RUNNING]: STOP,
    [PRE_COPY]: STOP,
    [PRE_COPY_P2P]: STOP,
    [STOP_COPY]: STOP,
    [RESUMING]: RESUMING,
    [RUNNING_P2P]: STOP,
    [ERROR]: ERROR,
  });
  row(RUNNING_P2P, {
    [STOP]: STOP,
    [RUNNING]: RUNNING,
    [PRE_COPY]: RUNNING,
    [PRE_COPY_P2P]: PRE_COPY_P2P,
    [STOP_COPY]: STOP,
    [RESUMING]: STOP,
    [RUNNING_P2P]: RUNNING_P2P,
    [ERROR]: ERROR,
  });
  row(ERROR, {
    [STOP]: ERROR,
    [RUNNING]: ERROR,
    [PRE_COPY]: ERROR,
    [PRE_COPY_P2P]: ERROR,
    [STOP_COPY]: ERROR,
    [RESUMING]: ERROR,
    [RUNNING_P2P]: ERROR,
    [ERROR]: ERROR,
  });
  return t;
})();

/** The flags a state needs (the kernel's state_flags_table); ERROR needs all, so nobody asks for it. */
const NEEDS: readonly number[] = (() => {
  const { STOP_COPY: SC, P2P, PRE_COPY: PC } = MigrationFlags;
  const t: number[] = [];
  t[STOP] = SC;
  t[RUNNING] = SC;
  t[PRE_COPY] = SC | PC;
  t[PRE_COPY_P2P] = SC | P2P | PC;
  t[STOP_COPY] = SC;
  t[RESUMING] = SC;
  t[RUNNING_P2P] = SC | P2P;
  t[ERROR] = ~0;
  return t;
})();

/** True when a device with `flags` has `state`. */
export function hasMigState(flags: number, state: number): boolean {
  return isMigState(state) && (NEEDS[state]! & flags) === NEEDS[state];
}

/**
 * Checks flags a driver declares: STOP_COPY is required, nothing beyond
 * P2P and PRE_COPY is defined. EINVAL otherwise.
 */
export function checkMigrationFlags(flags: number): void {
  const known = MigrationFlags.STOP_COPY | MigrationFlags.P2P | MigrationFlags.PRE_COPY;
  if (!Number.isInteger(flags) || (flags & MigrationFlags.STOP_COPY) === 0 || (flags & ~known) !== 0) {
    throw new VfioError('EINVAL', `migration flags 0x${flags.toString(16)}: STOP_COPY is required, only P2P and PRE_COPY may join it`);
  }
}

/**
 * The next state to step to from `cur` on the way to `target`, skipping
 * the states a device with `flags` lacks. EINVAL when `target` is not a
 * state the device has, or no path leads there (ERROR, STOP_COPY →
 * PRE_COPY, anything out of ERROR).
 */
export function nextMigState(flags: number, cur: MigStateValue, target: number): MigStateValue {
  if (!hasMigState(flags, target)) {
    throw new VfioError('EINVAL', `migration state ${migStateName(target)} is not one this device has`);
  }
  if (cur === ERROR) throw new VfioError('EINVAL', 'the device is in the ERROR migration state: only a reset leaves it');
  let next = NEXT[cur]![target]!;
  // ERROR ends the walk: it is no state to skip over, it means "no path".
  while (next !== ERROR && !hasMigState(flags, next)) next = NEXT[next]![target]!;
  if (next === ERROR) {
    throw new VfioError('EINVAL', `no migration arc leads from ${migStateName(cur)} to ${migStateName(target)}`);
  }
  return next;
}

/** Every arc from `cur` to `target`, in order (empty when they are equal); EINVAL as nextMigState. */
export function migrationPath(flags: number, cur: MigStateValue, target: number): MigStateValue[] {
  const path: MigStateValue[] = [];
  for (let s = cur; s !== target;) {
    s = nextMigState(flags, s, target);
    path.push(s);
    if (path.length > MIG_STATE_COUNT) throw new Error('migration path does not converge');
  }
  return path;
}

/** States in which the device runs (may interrupt, DMA, change its state). */
export function isRunningState(state: MigStateValue): boolean {
  return state === RUNNING || state === RUNNING_P2P || state === PRE_COPY || state === PRE_COPY_P2P;
}

/** The saving group: a data session is open for reading. */
export function isSavingState(state: MigStateValue): boolean {
  return state === PRE_COPY || state === PRE_COPY_P2P || state === STOP_COPY;
}
