/**
 * Seeded stress of migration v2 against everything else the core serialises:
 * three clients drive two migrating devices of one set (migration SETs to
 * random targets, stream reads and writes, resets, hot resets, closes and
 * reopens) while every driver hook parks at a scheduler point, so the PRNG
 * picks the interleaving and a failing seed replays exactly. After every
 * step:
 *
 * - no two ops or hooks of the set overlap (transitions are serialised with
 *   reset and close under the set lock);
 * - the driver is stopped exactly when the state says so: never stopped
 *   twice, never started while running, stop-copy saved and loads done only
 *   while stopped (the device flags each as a violation);
 * - the state is one the device has; ERROR only after an injected failure;
 * - a device nobody holds is RUNNING and running.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MigState, VfioCore, VfioError, type DeviceFile, type MigStateValue } from '../../src/core/index.js';
import { isRunningState } from '../../src/core/migration-fsm.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { MigDevice } from '../support/mig-device.js';
import { Prng } from '../support/prng.js';
import { Scheduler } from '../support/scheduler.js';
import { SetMonitor } from '../support/test-device.js';

const OPS_PER_RUN = 3000;
const RUNS: Array<[number, number]> = [
  [11, 1],
  [12, 3],
  [13, 3],
];
const TARGETS: MigStateValue[] = [
  MigState.STOP,
  MigState.RUNNING,
  MigState.STOP_COPY,
  MigState.RESUMING,
  MigState.RUNNING_P2P,
  MigState.PRE_COPY,
  MigState.PRE_COPY_P2P,
];

async function runSeed(seed: number, burst: number): Promise<Record<string, number>> {
  const rng = new Prng(seed);
  const sched = new Scheduler(rng, { burst });
  const core = new VfioCore();
  const monitor = new SetMonitor();
  const point = (label: string) => sched.point(label);
  const devices = ['a', 'b'].map((name) => {
    const d = new MigDevice({ name, core, point, monitor, maxStreamBytes: 16 });
    d.register({ setKey: 'set' });
    return d;
  });
  const ctx = new IommufdContext();
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  const count = (k: string): void => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  let injected = 0;
  let ops = 0;
  const files: DeviceFile[] = [];

  const expect = (err: unknown, codes: string[], what: string): void => {
    if (err instanceof VfioError && codes.includes(err.code)) {
      count(`${what}${err.code}`);
      return;
    }
    if (err instanceof Error && err.message === 'injected') return;
    problems.push(`${what}: unexpected ${err instanceof VfioError ? err.code : String(err)}`);
  };

  const act = async (): Promise<void> => {
    let file: DeviceFile | null = null;
    while (ops < OPS_PER_RUN) {
      await sched.point('actor');
      ops++;
      if (file === null || file.state === 'closed') {
        file = rng.pick(devices).openFile();
        files.push(file);
        await file.bindIommufd(ctx);
        count('open');
        continue;
      }
      const dev = file.device as MigDevice;
      const r = rng.next();
      try {
        if (r < 0.45) {
          if (rng.chance(0.03)) {
            dev.fail = { hook: rng.pick(['save', 'stop', 'start'] as const), error: new Error('injected') };
            injected++;
          }
          await file.setMigrationState(rng.pick(TARGETS));
          count('set');
        } else if (r < 0.6) {
          await file.migrationDataRead(1 + rng.int(8));
          count('read');
        } else if (r < 0.72) {
          await file.migrationDataWrite(Uint8Array.of(0xaa, rng.int(256)));
          count('write');
        } else if (r < 0.82) {
          await file.reset();
          count('reset');
        } else if (r < 0.88) {
          await file.pciHotReset();
          count('hotReset');
        } else if (r < 0.95) {
          await file.migrationState();
          count('get');
        } else {
          await file.close();
          count('close');
        }
      } catch (err) {
        expect(err, ['EINVAL', 'ENOSPC', 'EBADMSG'], 'op');
      } finally {
        dev.fail = null;
      }
    }
  };

  const check = (): void => {
    for (const dev of devices) {
      if (dev.violations.length) problems.push(`seed ${seed} step ${sched.steps} ${dev.name}: ${dev.violations.join('; ')}`);
      dev.violations.length = 0;
      const lock = dev.devSet!.lock;
      const m = dev.openCount > 0 || !lock.idle ? null : dev;
      if (m !== null && !dev.running) problems.push(`seed ${seed} ${dev.name}: nobody holds it, yet it is stopped`);
    }
    if (monitor.violations.length) problems.push(`seed ${seed}: ${monitor.violations.join('; ')}`);
    monitor.violations.length = 0;
  };

  let finished = 0;
  const actors = [0, 1, 2].map(() => act().then(() => finished++));
  while (finished < actors.length && (await sched.step())) {
    check();
    if (problems.length) break;
  }
  assert.deepEqual(problems, [], `seed ${seed}`);
  await Promise.all(actors);
  // Every state seen by a client is one the device has, and running-ness matches.
  for (const dev of devices) {
    const f = dev.openFile();
    const bind = f.bindIommufd(ctx);
    while (await sched.step()) check();
    await bind;
    const get = Promise.resolve(f.migrationState());
    while (await sched.step()) check();
    const state = await get;
    if (state === MigState.ERROR) assert.ok(injected > 0, `seed ${seed}: ERROR without a failure`);
    else assert.equal(dev.running, isRunningState(state), `seed ${seed} ${dev.name} in ${state}`);
    files.push(f);
  }
  const closing = files.map((f) => f.close());
  while (await sched.step()) check();
  await Promise.all(closing);
  check();
  assert.deepEqual(problems, [], `seed ${seed} wind-down`);
  for (const dev of devices) assert.equal(dev.running, true, `${dev.name} runs once nobody holds it`);
  return counts;
}

for (const [seed, burst] of RUNS) {
  test(`migration stress, seed ${seed}, burst ${burst}: transitions, streams, resets and closes interleave safely`, async (t) => {
    const counts = await runSeed(seed, burst);
    for (const k of ['set', 'read', 'write', 'reset', 'hotReset', 'close', 'opEINVAL']) {
      assert.ok((counts[k] ?? 0) > 0, `seed ${seed} never did ${k}: ${JSON.stringify(counts)}`);
    }
    t.diagnostic(JSON.stringify(counts));
  });
}
