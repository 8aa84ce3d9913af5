import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { PoolDriver } from './pool-driver.js';
import { fastCore, rejectsWith, uuidOf, Gates, tick } from './helpers.js';
import { IommufdContext } from '../../src/iommufd/index.js';

function throwsWith(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VfioError && e.code === code);
}

test('a parent registers its types: ids, attributes, instance counts', () => {
  const bus = new MdevBus({ core: fastCore() });
  const counted = bus.registerParent({ name: 'p0', driver: new PoolDriver({ maxInstances: 3 }) });
  assert.deepEqual(
    counted.types.map((t) => t.id),
    ['tpool-1', 'tpool-2'],
  );
  const t1 = counted.type('tpool-1')!;
  assert.equal(t1.name, 'Single port');
  assert.equal(t1.description, 'one port');
  assert.equal(t1.deviceApi, 'vfio-pci', 'the core provides device_api');
  assert.equal(t1.maxInstances, 3);
  assert.equal(t1.availableInstances, 3);
  assert.equal(t1.instances, 0);

  const pooled = bus.registerParent({ name: 'p1', driver: new PoolDriver({ name: 'other', ports: 3 }) });
  assert.equal(pooled.type('other-1')!.availableInstances, 3, 'the driver computes it from its pool');
  assert.equal(pooled.type('other-2')!.availableInstances, 1);
  assert.equal(pooled.type('other-2')!.maxInstances, undefined);

  assert.deepEqual(
    bus.types().map((t) => t.id),
    ['tpool-1', 'tpool-2', 'other-1', 'other-2'],
  );
  assert.equal(bus.type('other-2'), pooled.type('other-2'));
  assert.equal(bus.type('tpool-1', 'p1'), undefined);
  assert.equal(bus.parent('p0'), counted);
});

test('registerParent: EEXIST for a taken name, EINVAL for a bad declaration', () => {
  const bus = new MdevBus({ core: fastCore() });
  bus.registerParent({ name: 'p', driver: new PoolDriver() });
  throwsWith(() => bus.registerParent({ name: 'p', driver: new PoolDriver() }), 'EEXIST');
  throwsWith(() => bus.registerParent({ name: 'a/b', driver: new PoolDriver() }), 'EINVAL');
  throwsWith(() => bus.registerParent({ name: 'q', driver: new PoolDriver(), types: [] }), 'EINVAL');
  throwsWith(() => bus.registerParent({ name: 'q', driver: new PoolDriver(), types: [{ name: 'x y', maxInstances: 1 }] }), 'EINVAL');
  throwsWith(() => bus.registerParent({ name: 'q', driver: new PoolDriver(), types: [{ name: 'x' }] }), 'EINVAL');
  throwsWith(() => bus.registerParent({ name: 'q', driver: new PoolDriver(), types: [{ name: 'x', maxInstances: -1 }] }), 'EINVAL');
  throwsWith(
    () =>
      bus.registerParent({
        name: 'q',
        driver: new PoolDriver(),
        types: [
          { name: 'x', maxInstances: 1 },
          { name: 'x', maxInstances: 2 },
        ],
      }),
    'EINVAL',
  );
  assert.deepEqual(
    bus.parents().map((p) => p.name),
    ['p'],
    'a refused parent leaves nothing behind',
  );
});

test('unregistering a parent removes its devices first, forcing a driver that refuses', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver({ ports: 8, refuse: () => true });
  const parent = bus.registerParent({ name: 'p', driver });
  const other = bus.registerParent({ name: 'q', driver: new PoolDriver({ name: 'q' }) });
  const mine = await Promise.all([0, 1, 2].map((i) => bus.create(uuidOf(i), 'tpool-1')));
  const theirs = await bus.create(uuidOf(9), 'q-1');

  // A client holds the first device open; it lets go when asked.
  const file = mine[0]!.device.openFile();
  const ctx = new IommufdContext();
  await file.bindIommufd(ctx);
  const dev0 = driver.probed[0]!;
  dev0.requestListeners.add(() => void file.close());

  const log: string[] = [];
  bus.on('removed', (m) => log.push(`removed ${m.uuid}`));
  bus.on('parentUnregistering', (p) => log.push(`unregistering ${p.name}`));
  bus.on('parentUnregistered', (p) => log.push(`unregistered ${p.name}`));

  const done = parent.unregister();
  assert.equal(bus.unregisterParent('p'), done, 'a second call returns the same promise');
  assert.equal(parent.state, 'unregistering');
  await rejectsWith(bus.remove(uuidOf(1)), 'ENODEV');
  await rejectsWith(bus.create(uuidOf(5), 'tpool-1'), 'ENODEV');
  await done;

  assert.equal(parent.state, 'unregistered');
  assert.equal(log[0], 'unregistering p');
  assert.equal(log.at(-1), 'unregistered p', 'the devices go first');
  assert.deepEqual(log.slice(1, -1).sort(), mine.map((m) => `removed ${m.uuid}`).sort());
  assert.ok(dev0.requests >= 1, 'the client was asked to let go');
  assert.equal(file.state, 'closed');
  for (const d of driver.probed) assert.equal(d.releases, 1);
  assert.equal(driver.freePortCount, 8);
  assert.deepEqual(driver.violations(), []);
  assert.deepEqual(bus.devices(), [theirs], 'other parents keep theirs');
  assert.deepEqual(
    bus.types().map((t) => t.id),
    ['q-1', 'q-2'],
  );
  assert.equal(bus.parent('p'), undefined);
  await rejectsWith(bus.create(uuidOf(6), parent.type('tpool-1')!), 'ENODEV');
  await rejectsWith(bus.create(uuidOf(6), 'tpool-1'), 'ENOENT');
  await rejectsWith(bus.unregisterParent('nope'), 'ENODEV');
  await other.unregister();
  assert.deepEqual(core.devices(), []);
  assert.equal(core.setCount, 0);
});

test('a create in flight when its parent starts unregistering fails with ENODEV and frees everything', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const gates = new Gates();
  const driver = new PoolDriver({ ports: 4, point: gates.point });
  const parent = bus.registerParent({ name: 'p', driver });
  const creating = bus.create(uuidOf(1), 'tpool-2');
  await tick();
  assert.ok(gates.isParked(`probe ${uuidOf(1)}`));
  assert.equal(parent.type('tpool-2')!.instances, 1, 'the instance is held while probing');
  const unregistering = parent.unregister();
  gates.open('*');
  await rejectsWith(creating, 'ENODEV');
  await unregistering;
  assert.equal(driver.probed[0]!.releases, 1, 'the probed device was released, never registered');
  assert.equal(driver.probed[0]!.state, 'initialized');
  assert.equal(driver.freePortCount, 4);
  assert.deepEqual(core.devices(), []);
  assert.deepEqual(bus.heldUuids(), []);
});

test('parent unregistration while a refused remove is in flight still removes the device', async () => {
  const bus = new MdevBus({ core: fastCore() });
  const gates = new Gates();
  const driver = new PoolDriver({ ports: 2, point: gates.point, refuse: (_m, o) => !o.forced });
  const parent = bus.registerParent({ name: 'p', driver });
  gates.open(`probe ${uuidOf(1)}`);
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  const removing = bus.remove(mdev.uuid);
  await tick();
  const unregistering = parent.unregister();
  gates.open('*');
  await rejectsWith(removing, 'EBUSY');
  await unregistering;
  assert.equal(mdev.state, 'removed');
  assert.equal(driver.probed[0]!.releases, 1);
  assert.equal(driver.freePortCount, 2);
});
