/**
 * Seed 004 ("vfio-mdev: Fix remove race") as a stress test: one creator,
 * four removers, ≥10,000 create iterations per run. Set STRESS_SEED to
 * replay a failing seed; STRESS_ITERATIONS to run longer.
 */
import { test } from 'node:test';
import { runStress, type StressOptions, type StressSubject } from './seed004-harness.js';
import { type PoolDevice, PoolDriver } from './pool-driver.js';
import { type MttyDevice, MttyDriver } from '../../src/drivers/mtty/index.js';
import type { VfioDevice } from '../../src/core/index.js';

const SEED = Number(process.env.STRESS_SEED ?? 4004);
const ITERATIONS = Number(process.env.STRESS_ITERATIONS ?? 10_000);

function run(name: string, options: Omit<StressOptions, 'seed'> & { seed?: number }): void {
  test(name, async (t) => {
    const seed = options.seed ?? SEED;
    const started = performance.now();
    const report = await runStress({ ...options, seed });
    const ms = Math.round(performance.now() - started);
    t.diagnostic(`seed ${seed}: ${JSON.stringify(report)} in ${ms} ms`);
  });
}

/** The test driver with a shared pool of `ports`, shaped like mtty. */
function pool(ports: number): () => StressSubject {
  return () => {
    const driver = new PoolDriver({ name: 'mtty', ports });
    return { driver, pool: { size: ports, free: () => driver.freePortCount, portsOf: (d: VfioDevice) => (d as PoolDevice).ports } };
  };
}

/** The real mtty driver, with a pool of `ports`. */
function mtty(ports: number): () => StressSubject {
  return () => {
    const driver = new MttyDriver({ ports });
    return { driver, pool: { size: ports, free: () => driver.pool.free, portsOf: (d: VfioDevice) => (d as MttyDevice).ports } };
  };
}

/** The seed's shape: four removers against one creator, UUIDs drawn from a small set so they collide. */
const SEED_004 = { removers: 4, uuids: 16, subject: pool(8) };
/** The shorter variants: two clients, a tighter pool. */
const TIGHT = { iterations: Math.ceil(ITERATIONS / 5), removers: 4, clients: 2, uuids: 12, subject: pool(6) };

run('seed 004: one creator, four removers', { ...SEED_004, iterations: ITERATIONS, clients: 0 });

// The full 10,000 with clients run on the real mtty driver below; this one is the test driver's.
run('seed 004: with clients connected to the devices being removed', { ...SEED_004, iterations: Math.ceil(ITERATIONS / 5), clients: 3 });

run('seed 004: with a driver that refuses one remove in four', { ...TIGHT, seed: SEED + 1, refuseRate: 0.25 });

run('seed 004: instances counted by the bus (maxInstances)', {
  ...TIGHT,
  seed: SEED + 3,
  subject: () => ({ driver: new PoolDriver({ name: 'mtty', maxInstances: 2 }), pool: null }),
  maxInstances: 2,
});

run('seed 004: the real mtty driver, with clients', {
  ...SEED_004,
  seed: SEED + 4,
  iterations: ITERATIONS,
  clients: 3,
  subject: mtty(8),
});

run('seed 004: the parent unregisters in the middle of it all', {
  ...TIGHT,
  seed: SEED + 2,
  refuseRate: 0.25,
  unregisterParentAt: 0.8,
});
