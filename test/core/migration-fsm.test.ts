/**
 * The migration v2 state machine against the uAPI's own words: the direct
 * arcs include/uapi/linux/vfio.h lists (per combination of flags), the
 * shortest-path rule, no saving-group state inside a path, and the arcs
 * that are refused. The arc lists below are written from the uAPI text,
 * not from the implementation's table.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import { MigrationFlags, MigState, type MigStateValue } from '../../src/base/uapi.js';
import { hasMigState, migrationPath, migStateName, nextMigState } from '../../src/core/migration-fsm.js';

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = MigState;
const { STOP_COPY: SC, P2P, PRE_COPY: PC } = MigrationFlags;
const ALL: MigStateValue[] = [ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P];
const SAVING = new Set<MigStateValue>([PRE_COPY, PRE_COPY_P2P, STOP_COPY]);

type Arc = [MigStateValue, MigStateValue];

/**
 * The direct arcs per flag combination. With P2P, the uAPI's list; without
 * it, the P2P states are passed through (RUNNING_P2P → STOP becomes
 * RUNNING → STOP, PRE_COPY_P2P → STOP_COPY becomes PRE_COPY → STOP_COPY).
 */
const ARCS: Array<{ flags: number; arcs: Arc[] }> = [
  {
    flags: SC,
    arcs: [
      [RUNNING, STOP],
      [STOP, RUNNING],
      [STOP, STOP_COPY],
      [STOP_COPY, STOP],
      [STOP, RESUMING],
      [RESUMING, STOP],
    ],
  },
  {
    flags: SC | P2P,
    arcs: [
      [RUNNING, RUNNING_P2P],
      [RUNNING_P2P, RUNNING],
      [RUNNING_P2P, STOP],
      [STOP, RUNNING_P2P],
      [STOP, STOP_COPY],
      [STOP_COPY, STOP],
      [STOP, RESUMING],
      [RESUMING, STOP],
    ],
  },
  {
    flags: SC | PC,
    arcs: [
      [RUNNING, STOP],
      [STOP, RUNNING],
      [STOP, STOP_COPY],
      [STOP_COPY, STOP],
      [STOP, RESUMING],
      [RESUMING, STOP],
      [RUNNING, PRE_COPY],
      [PRE_COPY, RUNNING],
      [PRE_COPY, STOP_COPY],
    ],
  },
  {
    flags: SC | P2P | PC,
    arcs: [
      [RUNNING, RUNNING_P2P],
      [RUNNING_P2P, RUNNING],
      [RUNNING_P2P, STOP],
      [STOP, RUNNING_P2P],
      [STOP, STOP_COPY],
      [STOP_COPY, STOP],
      [STOP, RESUMING],
      [RESUMING, STOP],
      [RUNNING, PRE_COPY],
      [PRE_COPY, RUNNING],
      [RUNNING_P2P, PRE_COPY_P2P],
      [PRE_COPY_P2P, RUNNING_P2P],
      [PRE_COPY, PRE_COPY_P2P],
      [PRE_COPY_P2P, PRE_COPY],
      [PRE_COPY_P2P, STOP_COPY],
    ],
  },
];

const flagName = (f: number): string => ['STOP_COPY', f & P2P ? 'P2P' : '', f & PC ? 'PRE_COPY' : ''].filter(Boolean).join('|');
const arcKey = (a: MigStateValue, b: MigStateValue): string => `${migStateName(a)}->${migStateName(b)}`;

/**
 * Shortest path length over `arcs` by BFS, under the uAPI's rule that a
 * saving-group state is never inside a path: a path may stay in the saving
 * group it starts in (PRE_COPY → PRE_COPY_P2P → STOP_COPY is one session),
 * but never enters the group before its end.
 */
function shortest(arcs: Arc[], from: MigStateValue, to: MigStateValue): number | null {
  // A node is a state plus whether every state so far was a saving one.
  const key = (s: MigStateValue, inGroup: boolean): string => `${s}/${inGroup}`;
  const start = { s: from, inGroup: SAVING.has(from), d: 0 };
  const seen = new Set([key(start.s, start.inGroup)]);
  const queue = [start];
  while (queue.length > 0) {
    const n = queue.shift()!;
    if (n.s === to) return n.d;
    if (n.d > 0 && SAVING.has(n.s) && !n.inGroup) continue; // entered the group before the end
    for (const [a, b] of arcs) {
      if (a !== n.s) continue;
      const next = { s: b, inGroup: n.inGroup && SAVING.has(b), d: n.d + 1 };
      if (seen.has(key(next.s, next.inGroup))) continue;
      seen.add(key(next.s, next.inGroup));
      queue.push(next);
    }
  }
  return null;
}

const isEinval = (err: unknown): boolean => isVfioError(err, 'EINVAL');

describe('migration FSM', () => {
  for (const { flags, arcs } of ARCS) {
    describe(flagName(flags), () => {
      const states = ALL.filter((s) => s !== ERROR && hasMigState(flags, s));
      const allowed = new Set(arcs.map(([a, b]) => arcKey(a, b)));

      it('has exactly the states its flags give', () => {
        const expected: MigStateValue[] = [STOP, RUNNING, STOP_COPY, RESUMING];
        if (flags & P2P) expected.push(RUNNING_P2P);
        if (flags & PC) expected.push(PRE_COPY);
        if (flags & P2P && flags & PC) expected.push(PRE_COPY_P2P);
        assert.deepEqual([...states].sort(), expected.sort());
        assert.equal(hasMigState(flags, ERROR), false);
      });

      it('takes every listed arc directly', () => {
        for (const [a, b] of arcs) assert.equal(nextMigState(flags, a, b), b, arcKey(a, b));
      });

      it('walks every other pair through listed arcs, shortest, entering the saving group only at the end', () => {
        // The uAPI forbids these outright, though a path would exist.
        const forbidden = new Set([arcKey(STOP_COPY, PRE_COPY), arcKey(STOP_COPY, PRE_COPY_P2P)]);
        let walked = 0;
        for (const from of states) {
          for (const to of states) {
            const best = shortest(arcs, from, to);
            if (forbidden.has(arcKey(from, to))) {
              assert.throws(() => migrationPath(flags, from, to), isEinval, `${arcKey(from, to)} must be refused`);
              continue;
            }
            assert.notEqual(best, null, `${arcKey(from, to)} has no path in the uAPI's arcs`);
            const path = migrationPath(flags, from, to);
            assert.equal(path.length, best, `${arcKey(from, to)}: ${path.map(migStateName).join(' ')}`);
            let at = from;
            let inGroup = SAVING.has(from);
            for (const [i, s] of path.entries()) {
              assert.ok(allowed.has(arcKey(at, s)), `${arcKey(from, to)} steps ${arcKey(at, s)}, not an arc`);
              inGroup &&= SAVING.has(s);
              if (i < path.length - 1 && !inGroup) assert.ok(!SAVING.has(s), `${arcKey(from, to)} passes through ${migStateName(s)}`);
              at = s;
            }
            walked++;
          }
        }
        const refused = states.filter((s) => s === PRE_COPY || s === PRE_COPY_P2P).length;
        assert.equal(walked, states.length * states.length - refused);
      });

      it('refuses ERROR as a target, leaving ERROR, and states the device lacks', () => {
        for (const from of states) {
          assert.throws(() => nextMigState(flags, from, ERROR), isEinval);
          for (const to of ALL.filter((s) => s !== ERROR && !hasMigState(flags, s))) {
            assert.throws(() => nextMigState(flags, from, to), isEinval, `${arcKey(from, to)}`);
          }
          for (const bad of [8, -1, 2.5, 255]) assert.throws(() => nextMigState(flags, from, bad), isEinval);
        }
        for (const to of states) assert.throws(() => nextMigState(flags, ERROR, to), isEinval);
      });
    });
  }

  it('refuses STOP_COPY → PRE_COPY and → PRE_COPY_P2P (the uAPI forbids them)', () => {
    assert.throws(() => nextMigState(SC | PC, STOP_COPY, PRE_COPY), isEinval);
    assert.throws(() => nextMigState(SC | P2P | PC, STOP_COPY, PRE_COPY), isEinval);
    assert.throws(() => nextMigState(SC | P2P | PC, STOP_COPY, PRE_COPY_P2P), isEinval);
  });

  it('follows the kernel for the combinations QEMU uses', () => {
    const f = SC | P2P | PC;
    const path = (a: MigStateValue, b: MigStateValue): string[] => migrationPath(f, a, b).map(migStateName);
    assert.deepEqual(path(RUNNING, STOP_COPY), ['RUNNING_P2P', 'STOP', 'STOP_COPY']);
    assert.deepEqual(path(PRE_COPY, STOP_COPY), ['PRE_COPY_P2P', 'STOP_COPY']);
    assert.deepEqual(path(STOP_COPY, RUNNING), ['STOP', 'RUNNING_P2P', 'RUNNING']);
    assert.deepEqual(path(RESUMING, RUNNING), ['STOP', 'RUNNING_P2P', 'RUNNING']);
    assert.deepEqual(path(RUNNING, RESUMING), ['RUNNING_P2P', 'STOP', 'RESUMING']);
    assert.deepEqual(path(PRE_COPY, RESUMING), ['RUNNING', 'RUNNING_P2P', 'STOP', 'RESUMING']);
    assert.deepEqual(migrationPath(SC, RUNNING, STOP_COPY).map(migStateName), ['STOP', 'STOP_COPY']);
    assert.deepEqual(migrationPath(SC | PC, PRE_COPY, STOP_COPY).map(migStateName), ['STOP_COPY']);
  });
});
