/**
 * Seeded stress of the core: clients open, bind, use, hot-reset and close
 * files while an operator unregisters and re-registers devices, over 4
 * devices in 2 sets. Every driver op and every client step parks at a
 * scheduler point, so the PRNG decides the interleaving; a failing seed
 * replays exactly. After every single step the invariants are checked:
 *
 * - open_device/close_device match first bind / last close exactly
 *   (the driver flags any double open or close; openCount equals the bound
 *   files whenever the set is quiet);
 * - no two ops of one set overlap;
 * - nothing runs after release, and release runs once;
 * - unregister resolves right after the last close (only the set lock,
 *   held by an op in flight, may delay it), and holders were nudged;
 * - registration references equal the open files (+1 while registered);
 * - a hot reset only ever runs with every bound file of its set in one context.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioCore, VfioError, type DeviceFile } from '../../src/core/index.js';
import { RECORD } from '../../src/core/device-record.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { Prng } from '../support/prng.js';
import { Scheduler } from '../support/scheduler.js';
import { SetMonitor, TestDevice } from '../support/test-device.js';

const OPS_PER_RUN = 10_000;
/** [seed, burst]: one task per step, and bursts that interleave continuations at every await. */
const RUNS: Array<[number, number]> = [
  [1, 1],
  [2, 1],
  [3, 3],
  [4, 3],
];
const SLOTS = [
  { name: 'd0', set: 'S1' },
  { name: 'd1', set: 'S1' },
  { name: 'd2', set: 'S2' },
  { name: 'd3', set: 'S2' },
];

class StressDevice extends TestDevice {
  unregisterResolved = false;
  // The reset op also checks the hot-reset precondition from the inside.
  override reset(): void | Promise<void> {
    const contexts = new Set<IommufdContext>();
    for (const d of this.devSet?.devices ?? []) {
      for (const f of d.files) if (f.context) contexts.add(f.context);
    }
    if (contexts.size > 1) this.violations.push('hot reset ran with files of the set in several contexts');
    return super.reset();
  }
}

interface Actor {
  ctx: IommufdContext;
  files: DeviceFile[];
}

async function runSeed(seed: number, burst: number): Promise<{ ops: number; steps: number; counts: Record<string, number> }> {
  const rng = new Prng(seed);
  const sched = new Scheduler(rng, { burst });
  const core = new VfioCore({
    requestBackoffMs: (n) => n,
    wait: (_ms, drained) => sched.pointOrWake('backoff', drained),
  });
  const monitors = new Map<string, SetMonitor>([
    ['S1', new SetMonitor()],
    ['S2', new SetMonitor()],
  ]);
  const point = (label: string) => sched.point(label);
  const all: StressDevice[] = [];
  const current = new Map<string, StressDevice>();
  const plug = (slot: (typeof SLOTS)[number]) => {
    const dev = new StressDevice({
      name: slot.name,
      core,
      point,
      monitor: monitors.get(slot.set)!,
      failOpen: () => rng.chance(0.05),
    });
    dev.register({ setKey: slot.set });
    all.push(dev);
    current.set(slot.name, dev);
  };
  for (const slot of SLOTS) plug(slot);

  // Two actors share a context, so hot resets sometimes may proceed.
  const shared = new IommufdContext();
  const actors: Actor[] = [shared, shared, new IommufdContext(), new IommufdContext(), new IommufdContext()].map((ctx) => ({ ctx, files: [] }));
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  let ops = 0;
  const expect = (err: unknown, codes: string[], what: string) => {
    if (!(err instanceof VfioError) || !codes.includes(err.code)) {
      problems.push(`${what}: unexpected ${err instanceof VfioError ? err.code : String(err)}`);
    }
  };

  const act = async (actor: Actor): Promise<void> => {
    while (ops < OPS_PER_RUN) {
      await sched.point('actor');
      ops++;
      const r = rng.next();
      const live = actor.files.filter((f) => f.state !== 'closed');
      actor.files = live;
      // A client nudged by the REQ interrupt usually lets go soon.
      const nudged = live.filter((f) => f.device.state === 'unregistering');
      if (r >= 0.93) {
        // The operator: unregister a device, or plug a released slot again.
        const slot = rng.pick(SLOTS);
        const dev = current.get(slot.name)!;
        if (dev.state === 'registered') {
          counts.unregister = (counts.unregister ?? 0) + 1;
          void dev.unregister().then(() => {
            dev.unregisterResolved = true;
          });
        } else if (dev.state === 'released') {
          counts.replug = (counts.replug ?? 0) + 1;
          plug(slot);
        }
      } else if (nudged.length > 0 && rng.chance(0.3)) {
        await rng.pick(nudged).close();
        counts.closeOnRequest = (counts.closeOnRequest ?? 0) + 1;
      } else if (r < 0.2 || live.length === 0) {
        const slot = rng.pick(SLOTS);
        const dev = current.get(slot.name)!;
        const registered = dev.state === 'registered';
        try {
          actor.files.push(dev.openFile());
          counts.open = (counts.open ?? 0) + 1;
          if (!registered) problems.push(`${dev.name}: opened while ${dev.state}`);
        } catch (err) {
          expect(err, ['ENODEV'], 'open');
          if (registered) problems.push(`${dev.name}: open refused while registered`);
          counts.openENODEV = (counts.openENODEV ?? 0) + 1;
        }
      } else if (r < 0.4) {
        const f = rng.pick(live);
        try {
          await f.bindIommufd(actor.ctx);
          counts.bind = (counts.bind ?? 0) + 1;
        } catch (err) {
          // EINVAL: already bound/binding; EIO: injected open_device failure.
          expect(err, ['EINVAL', 'EIO'], 'bind');
          counts[`bind${(err as VfioError).code}`] = (counts[`bind${(err as VfioError).code}`] ?? 0) + 1;
        }
      } else if (r < 0.65) {
        const f = rng.pick(live);
        try {
          if (rng.chance(0.5)) await f.regionRead(0, rng.int(60), new Uint8Array(4));
          else await f.regionWrite(0, rng.int(60), Uint8Array.of(rng.int(256)));
          counts.io = (counts.io ?? 0) + 1;
          if (f.state !== 'bound') problems.push('an op succeeded on an unbound file');
        } catch (err) {
          expect(err, ['EINVAL'], 'io');
        }
      } else if (r < 0.85) {
        await rng.pick(live).close();
        counts.close = (counts.close ?? 0) + 1;
      } else {
        const f = rng.pick(live);
        try {
          await f.pciHotReset();
          counts.hotReset = (counts.hotReset ?? 0) + 1;
        } catch (err) {
          expect(err, ['EINVAL', 'EPERM'], 'hot reset');
          counts[`hotReset${(err as VfioError).code}`] = (counts[`hotReset${(err as VfioError).code}`] ?? 0) + 1;
        }
      }
    }
  };

  const check = () => {
    for (const dev of all) {
      const c = dev[RECORD];
      const bound = [...dev.files].filter((f) => f.state === 'bound').length;
      const tag = `seed ${seed} step ${sched.steps} ${dev.name}#${all.indexOf(dev)}`;
      if (dev.violations.length) problems.push(`${tag}: ${dev.violations.join('; ')}`);
      dev.violations.length = 0;
      const lock = dev.devSet?.lock;
      if (lock?.idle) {
        if (dev.openCount !== bound) problems.push(`${tag}: openCount ${dev.openCount} but ${bound} bound files`);
        if (dev.isOpen !== dev.openCount > 0) problems.push(`${tag}: driver open=${dev.isOpen}, openCount=${dev.openCount}`);
      }
      const expectedRefs = dev.files.size + (dev.state === 'registered' ? 1 : 0);
      if (dev.state !== 'released' && c.refs !== expectedRefs) {
        problems.push(`${tag}: ${c.refs} registration refs for ${dev.files.size} files (${dev.state})`);
      }
      if (dev.state === 'unregistering') {
        if (dev.files.size === 0 && lock?.idle) problems.push(`${tag}: no file left, set quiet, yet not released`);
        if (dev.files.size > 0 && dev.requests.length === 0) problems.push(`${tag}: holders never nudged`);
      }
      if (dev.state === 'released') {
        if (!dev.unregisterResolved) problems.push(`${tag}: released but unregister() still pending`);
        if (dev.releases !== 1) problems.push(`${tag}: released ${dev.releases} times`);
        if (dev.files.size !== 0) problems.push(`${tag}: released with open files`);
      }
    }
    for (const [name, m] of monitors) {
      if (m.violations.length) problems.push(`seed ${seed} ${name}: ${m.violations.join('; ')}`);
      m.violations.length = 0;
    }
  };

  let finished = 0;
  const running = actors.map((a) => act(a).then(() => finished++));
  // Until the actors are done: an unregister waiting on a file nobody will
  // close parks forever in its back-off, so "nothing parked" is no end signal.
  while (finished < actors.length && (await sched.step())) {
    check();
    if (problems.length) break;
  }
  assert.deepEqual(problems, [], `seed ${seed}`);
  assert.equal(finished, actors.length, `seed ${seed}: actors stuck at ${sched.parkedLabels().join(',')}`);
  await Promise.all(running);

  // Wind down: close everything, unregister everything, nothing may linger.
  const closing = actors.flatMap((a) => a.files.map((f) => f.close()));
  const unregs = [...current.values()].map((d) => d.unregister().then(() => (d.unregisterResolved = true)));
  while (await sched.step()) check();
  await Promise.all([...closing, ...unregs]);
  check();
  assert.deepEqual(problems, [], `seed ${seed} wind-down`);
  for (const dev of all) {
    assert.equal(dev.state, 'released', `${dev.name} released`);
    assert.equal(dev.releases, 1);
    assert.equal(dev.opens, dev.closes, `${dev.name}: every open_device has its close_device`);
  }
  assert.equal(core.setCount, 0);
  assert.equal(core.devices().length, 0);
  return { ops, steps: sched.steps, counts };
}

for (const [seed, burst] of RUNS) {
  test(`core stress, seed ${seed}, burst ${burst}: ${OPS_PER_RUN} interleaved operations keep every invariant`, async (t) => {
    const { ops, steps, counts } = await runSeed(seed, burst);
    assert.ok(ops >= OPS_PER_RUN);
    // The run must really have exercised the interesting paths.
    for (const k of ['open', 'openENODEV', 'bind', 'bindEIO', 'io', 'close', 'closeOnRequest', 'hotReset', 'hotResetEPERM', 'unregister', 'replug']) {
      assert.ok((counts[k] ?? 0) > 0, `seed ${seed} never did ${k}: ${JSON.stringify(counts)}`);
    }
    t.diagnostic(`${ops} ops, ${steps} scheduler steps, ${JSON.stringify(counts)}`);
  });
}
