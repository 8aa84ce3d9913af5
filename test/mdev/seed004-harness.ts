/**
 * Seed 004's reproducer, deterministic: one task creates devices in a loop
 * while several tasks remove them (and, optionally, clients open the
 * devices and hold them until asked to let go). Every task parks at
 * scheduler points — in its loop, inside the driver's probe and remove,
 * in the core's request back-off — and a seeded scheduler picks who runs
 * next, often several at once so their continuations interleave too; a
 * seed fixes the interleaving and a failure replays exactly.
 * The invariants are checked after every step.
 */
import assert from 'node:assert/strict';
import { PciIrq, VfioCore, VfioError, type DeviceFile, type EventNotifier } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { MdevBus, type MdevDevice, type MdevDriver } from '../../src/mdev/index.js';
import { Prng } from '../support/prng.js';
import { Scheduler } from '../support/scheduler.js';
import { InstrumentedDriver, type PoolProbe } from './instrumented-driver.js';
import { uuidOf } from './helpers.js';

/** The driver under test, and how to see its pool (null when the bus counts instances). */
export interface StressSubject {
  driver: MdevDriver;
  pool: PoolProbe | null;
}

export interface StressOptions {
  seed: number;
  /** create attempts of the creator task */
  iterations: number;
  removers: number;
  /** client tasks that connect to listed devices; 0 for none */
  clients: number;
  /** how many distinct UUIDs the tasks draw from (collisions are the point) */
  uuids: number;
  /** a fresh driver for this run */
  subject: () => StressSubject;
  /** the types' maxInstances, when the bus counts instances instead of a pool */
  maxInstances?: number;
  /** chance that the driver refuses a user's remove */
  refuseRate?: number;
  /** unregister the parent when the creator has done this fraction of its iterations */
  unregisterParentAt?: number;
}

export interface StressReport {
  steps: number;
  created: number;
  removed: number;
  /** errors seen, by operation and code */
  errors: Record<string, number>;
  /** client connections made, and how many were asked to let go */
  connections: number;
  requested: number;
  maxListed: number;
}

export async function runStress(o: StressOptions): Promise<StressReport> {
  const rng = new Prng(o.seed);
  // Up to three tasks resumed per step, so their continuations interleave.
  const sched = new Scheduler(new Prng(o.seed ^ 0x5bd1e995), { burst: 3 });
  const core = new VfioCore({ requestBackoffMs: () => 1, wait: (_ms, wake) => sched.pointOrWake('backoff', wake) });
  const bus = new MdevBus({ core });
  const subject = o.subject();
  const driver = new InstrumentedDriver(subject.driver, {
    point: (label) => sched.point(label),
    refuse: () => rng.chance(o.refuseRate ?? 0),
    pool: subject.pool,
  });
  const parent = bus.registerParent({ name: 'mtty', driver });
  const uuids = Array.from({ length: o.uuids }, (_, i) => uuidOf(i + 1));
  const startAvailable = parent.types.map((t) => t.availableInstances);

  const report: StressReport = { steps: 0, created: 0, removed: 0, errors: {}, connections: 0, requested: 0, maxListed: 0 };
  const wins = new Map<MdevDevice, number>();
  const everCreated: MdevDevice[] = [];
  const files = new Set<DeviceFile>();
  const contexts = new Set<IommufdContext>();
  const broken: string[] = [];
  let creatorDone = false;
  let parentGoing = false;

  const expect = (op: string, err: unknown, allowed: string[]): void => {
    const code = err instanceof VfioError ? err.code : String(err);
    if (!allowed.includes(code)) broken.push(`${op}: unexpected ${code}: ${(err as Error).message}`);
    const key = `${op} ${code}`;
    report.errors[key] = (report.errors[key] ?? 0) + 1;
  };

  const creator = async (): Promise<void> => {
    const stopAt = o.unregisterParentAt === undefined ? -1 : Math.floor(o.iterations * o.unregisterParentAt);
    for (let i = 0; i < o.iterations; i++) {
      await sched.point('creator');
      if (i === stopAt) {
        parentGoing = true;
        void parent.unregister();
      }
      try {
        const mdev = await bus.create(rng.pick(uuids), rng.pick(parent.types));
        everCreated.push(mdev);
        report.created++;
      } catch (err) {
        expect('create', err, parentGoing ? ['EEXIST', 'EUSERS', 'ENODEV'] : ['EEXIST', 'EUSERS']);
      }
    }
    creatorDone = true;
  };

  const remover = async (k: number): Promise<void> => {
    // Like the seed's shells: keep removing whatever is there, until the creator is done and nothing is left.
    while (!creatorDone || bus.heldUuids().length > 0) {
      await sched.point(`remover ${k}`);
      const listed = bus.devices();
      const uuid = listed.length > 0 && rng.chance(0.75) ? rng.pick(listed).uuid : rng.pick(uuids);
      const target = bus.device(uuid);
      try {
        await bus.remove(uuid);
        report.removed++;
        if (!target) broken.push(`remove ${uuid} succeeded though it was not listed`);
        else {
          const n = (wins.get(target) ?? 0) + 1;
          wins.set(target, n);
          if (n > 1) broken.push(`${uuid} removed ${n} times`);
        }
      } catch (err) {
        expect('remove', err, o.refuseRate ? ['ENODEV', 'EBUSY'] : ['ENODEV']);
      }
    }
  };

  const client = async (k: number): Promise<void> => {
    while (!creatorDone) {
      await sched.point(`client ${k}`);
      const listed = bus.devices();
      if (listed.length === 0) continue;
      const mdev = rng.pick(listed);
      let asked = false;
      // What a vfio-pci client does: an eventfd on the REQ index, signalled when it should let go.
      const req: EventNotifier = {
        closed: false,
        signal() {
          if (!asked) report.requested++;
          asked = true;
        },
        close() {
          (this as { closed: boolean }).closed = true;
        },
      };
      const file = mdev.device.openFile(); // listed means registered: this cannot fail
      const ctx = new IommufdContext();
      files.add(file);
      contexts.add(ctx);
      report.connections++;
      try {
        await file.bindIommufd(ctx);
        await file.setIrqs({ index: PciIrq.REQ, start: 0, count: 1, action: 'trigger', data: 'eventfd', values: [req] });
        const byte = new Uint8Array(1);
        for (let i = rng.int(4); i >= 0 && !asked; i--) {
          await sched.point(`client ${k} op`);
          await file.regionWrite(0, 7, Uint8Array.of(i)); // a scratch register
          await file.regionRead(0, 7, byte);
        }
        while (!asked && rng.chance(0.6)) await sched.point(`client ${k} hold`);
      } catch (err) {
        expect('client', err, []);
      } finally {
        req.close();
        await file.close();
        ctx.destroy();
      }
    }
  };

  const check = (): void => {
    const listed = bus.devices();
    report.maxListed = Math.max(report.maxListed, listed.length);
    for (const m of listed) {
      if (m.state !== 'active') broken.push(`${m.uuid} listed while ${m.state}`);
      if (m.device.state !== 'registered') broken.push(`${m.uuid} listed while its device is ${m.device.state}`);
      if (core.device(m.uuid) !== m.device) broken.push(`${m.uuid} listed but not the core's device`);
    }
    const held = new Set(bus.heldUuids());
    for (const d of core.devices()) if (!held.has(d.name)) broken.push(`${d.name} in the core but not held by the bus`);
    const instances = parent.types.reduce((n, t) => n + t.instances, 0);
    if (parent.state !== 'unregistered' && instances !== held.size) {
      broken.push(`types hold ${instances} instances for ${held.size} UUIDs`);
    }
    broken.push(...driver.poolProblems());
    if (o.maxInstances !== undefined) {
      for (const t of parent.types) {
        if (t.instances > o.maxInstances || t.availableInstances !== o.maxInstances - t.instances) {
          broken.push(`${t.id}: ${t.instances} instances, ${t.availableInstances} available, max ${o.maxInstances}`);
        }
      }
    }
    if (driver.violations.length > 0) broken.push(...driver.violations);
  };

  let finished = false;
  const tasks = Promise.all([
    creator(),
    ...Array.from({ length: o.removers }, (_, k) => remover(k)),
    ...Array.from({ length: o.clients }, (_, k) => client(k)),
  ]).finally(() => {
    finished = true;
  });
  const stepLimit = o.iterations * 200;
  while (await sched.step()) {
    report.steps++;
    check();
    if (broken.length > 0) break;
    assert.ok(report.steps < stepLimit, `seed ${o.seed}: no progress after ${report.steps} steps`);
  }
  assert.deepEqual(broken.slice(0, 10), [], `seed ${o.seed}: invariants broken at step ${report.steps}`);
  await Scheduler.settle();
  assert.ok(finished, `seed ${o.seed}: deadlock, tasks parked at ${sched.parkedLabels().join(', ') || 'nothing'}`);
  await tasks;

  // Everything is back where it started.
  if (o.unregisterParentAt !== undefined) {
    await parent.unregister();
    assert.equal(parent.state, 'unregistered');
  } else {
    assert.deepEqual(
      parent.types.map((t) => t.availableInstances),
      startAvailable,
      'instance counts back where they started',
    );
    assert.ok(parent.types.every((t) => t.instances === 0));
  }
  if (subject.pool) assert.equal(subject.pool.free(), subject.pool.size, 'the pool is whole again');
  assert.deepEqual(bus.devices(), []);
  assert.deepEqual(bus.heldUuids(), []);
  assert.deepEqual(core.devices(), [], 'no device left in the core');
  assert.equal(core.setCount, 0);
  assert.deepEqual(core.allGroups(), []);
  for (const d of driver.probed) assert.equal(driver.releases.get(d), 1, `${d.name} released exactly once`);
  assert.equal(driver.live.size, 0);
  for (const m of everCreated) {
    assert.equal(m.state, 'removed');
    if (o.unregisterParentAt === undefined) assert.equal(wins.get(m), 1, `${m.uuid}: exactly one remover won`);
  }
  for (const f of files) assert.equal(f.state, 'closed', 'no file left open');
  for (const c of contexts) assert.equal(c.alive, false);
  return report;
}
