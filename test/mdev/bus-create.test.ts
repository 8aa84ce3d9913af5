import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { PoolDevice, PoolDriver } from './pool-driver.js';
import { TestDevice } from '../support/test-device.js';
import { fastCore, rejectsWith, uuidOf, Gates, tick } from './helpers.js';

function setup(options: ConstructorParameters<typeof PoolDriver>[0] = {}) {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver(options);
  const parent = bus.registerParent({ name: 'p', driver });
  return { core, bus, driver, parent };
}

test('create probes, registers and lists the device; an uppercase UUID is normalised', async () => {
  const { core, bus, driver, parent } = setup({ maxInstances: 2 });
  const created: string[] = [];
  bus.on('created', (m) => created.push(m.uuid));
  const upper = 'ABCDEF01-2345-4678-9ABC-DEF012345678';
  const mdev = await bus.create(upper, 'tpool-1', { note: 'x' });
  assert.equal(mdev.uuid, upper.toLowerCase());
  assert.equal(mdev.type, parent.type('tpool-1'));
  assert.equal(mdev.parent, parent);
  assert.deepEqual(mdev.attrs, { note: 'x' });
  assert.equal(mdev.state, 'active');
  assert.ok(mdev.device instanceof PoolDevice);
  assert.equal(mdev.device.state, 'registered');
  assert.equal(core.device(mdev.uuid), mdev.device, 'registered with the core under its UUID');
  assert.equal(bus.device(upper), mdev);
  assert.deepEqual(bus.devices(), [mdev]);
  assert.deepEqual(parent.devices(), [mdev]);
  assert.deepEqual(created, [mdev.uuid]);
  assert.equal(mdev.type.availableInstances, 1);
  assert.equal(driver.probed.length, 1);
  const file = mdev.device.openFile(); // openable
  await file.close();
});

test('create: a malformed UUID or bad attrs is EINVAL and takes nothing', async () => {
  const { bus, driver, parent } = setup();
  const bad = [
    '',
    'not-a-uuid',
    '000000000000400080000000000000001',
    '{00000000-0000-4000-8000-000000000001}',
    ' 00000000-0000-4000-8000-000000000001',
    '00000000-0000-4000-8000-000000000001\n',
    '00000000-0000-4000-8000-00000000001',
    '00000000-0000-4000-8000-0000000000012',
    '0000000g-0000-4000-8000-000000000001',
    '00000000_0000_4000_8000_000000000001',
  ];
  for (const u of bad) await rejectsWith(bus.create(u, 'tpool-1'), 'EINVAL');
  await rejectsWith(bus.create(42 as unknown as string, 'tpool-1'), 'EINVAL');
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1', { n: 1 } as unknown as Record<string, string>), 'EINVAL');
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1', null as unknown as Record<string, string>), 'EINVAL');
  assert.equal(driver.probed.length, 0);
  assert.equal(parent.type('tpool-1')!.instances, 0);
  assert.deepEqual(bus.heldUuids(), []);
});

test('create: ENOENT for an unknown type, EINVAL for an id two parents share', async () => {
  const { bus } = setup();
  await rejectsWith(bus.create(uuidOf(1), 'tpool-9'), 'ENOENT');
  const twin = bus.registerParent({ name: 'twin', driver: new PoolDriver() });
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1'), 'EINVAL');
  const mdev = await bus.create(uuidOf(1), twin.type('tpool-1')!);
  assert.equal(mdev.parent, twin);
});

test('create: EEXIST for a UUID that is live, being created, or being removed', async () => {
  const gates = new Gates();
  const { bus, parent } = setup({ maxInstances: 8, point: gates.point });
  gates.open(`probe ${uuidOf(1)}`);
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1'), 'EEXIST');
  await rejectsWith(bus.create(uuidOf(1).toUpperCase(), 'tpool-2'), 'EEXIST');

  const creating = bus.create(uuidOf(2), 'tpool-1');
  await tick();
  await rejectsWith(bus.create(uuidOf(2), 'tpool-1'), 'EEXIST');
  assert.equal(bus.device(uuidOf(2)), undefined, 'not listed while being created');
  gates.open(`probe ${uuidOf(2)}`);
  await creating;

  const removing = bus.remove(mdev.uuid);
  await tick();
  assert.ok(gates.isParked(`remove ${uuidOf(1)}`));
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1'), 'EEXIST');
  gates.open(`remove ${uuidOf(1)}`);
  await removing;
  gates.open(`probe ${uuidOf(1)}`);
  const again = await bus.create(uuidOf(1), 'tpool-1');
  assert.notEqual(again, mdev, 'a UUID is free again once its device is released');
  assert.equal(parent.type('tpool-1')!.instances, 2);
});

test('create: EUSERS when no instance is left, counted by the core', async () => {
  const gates = new Gates();
  const { bus, parent } = setup({ maxInstances: 2, point: gates.point });
  const t1 = parent.type('tpool-1')!;
  // Three concurrent creates, all parked in probe: the third cannot overshoot.
  const a = bus.create(uuidOf(1), t1);
  const b = bus.create(uuidOf(2), t1);
  await rejectsWith(bus.create(uuidOf(3), t1), 'EUSERS');
  assert.equal(t1.availableInstances, 0);
  assert.equal(parent.type('tpool-2')!.availableInstances, 2, 'each type counts its own');
  gates.open('*');
  await Promise.all([a, b]);
  await rejectsWith(bus.create(uuidOf(3), t1), 'EUSERS');
  await bus.remove(uuidOf(1));
  assert.equal(t1.availableInstances, 1, 'given back once released');
  await bus.create(uuidOf(3), t1);
});

test("create: EUSERS when the driver's shared pool is empty", async () => {
  const gates = new Gates();
  const { bus, driver, parent } = setup({ ports: 3, point: gates.point });
  const dual = bus.create(uuidOf(1), 'tpool-2');
  assert.equal(parent.type('tpool-2')!.availableInstances, 0, 'the pool share is taken in the same turn');
  assert.equal(parent.type('tpool-1')!.availableInstances, 1);
  await rejectsWith(bus.create(uuidOf(2), 'tpool-2'), 'EUSERS');
  const single = bus.create(uuidOf(3), 'tpool-1');
  await rejectsWith(bus.create(uuidOf(4), 'tpool-1'), 'EUSERS');
  gates.open('*');
  await Promise.all([dual, single]);
  assert.equal(driver.freePortCount, 0);
  await bus.remove(uuidOf(1));
  assert.equal(parent.type('tpool-2')!.availableInstances, 1);
  assert.equal(parent.type('tpool-1')!.availableInstances, 2);
});

test('a failing probe gives its instance back and leaves nothing', async () => {
  const { core, bus, parent } = setup({
    maxInstances: 1,
    failProbe: (info) => (info.uuid === uuidOf(1) ? new VfioError('ENOMEM', 'no memory') : null),
  });
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1'), 'ENOMEM');
  assert.equal(parent.type('tpool-1')!.availableInstances, 1);
  assert.deepEqual(bus.heldUuids(), []);
  assert.deepEqual(core.devices(), []);
  await bus.create(uuidOf(2), 'tpool-1');
});

test('a probe that throws a plain Error fails the create with EIO', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const parent = bus.registerParent({
    name: 'p',
    driver: {
      name: 'bad',
      types: [{ name: 'x', maxInstances: 1 }],
      probe: () => {
        throw new Error('boom');
      },
    },
  });
  await rejectsWith(bus.create(uuidOf(1), 'bad-x'), 'EIO');
  assert.equal(parent.type('bad-x')!.instances, 0);
});

test('a probed device the core cannot register is released, and its error returned', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver({ ports: 2 });
  bus.registerParent({ name: 'p', driver });
  // Someone else already holds the name in the core.
  const squatter = new TestDevice({ name: uuidOf(1), core });
  squatter.register();
  await rejectsWith(bus.create(uuidOf(1), 'tpool-1'), 'EEXIST');
  assert.equal(driver.probed[0]!.releases, 1);
  assert.equal(driver.freePortCount, 2);
  assert.deepEqual(bus.heldUuids(), []);
});

test('a probe returning a device with the wrong name or core is EIO, and the device is released', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  let released = 0;
  bus.registerParent({
    name: 'p',
    driver: {
      name: 'odd',
      types: [{ name: 'x', maxInstances: 1 }],
      probe: (info) => {
        const d = new TestDevice({ name: `${info.uuid}-x`, core: info.core });
        d.release = () => void released++;
        return d;
      },
    },
  });
  await rejectsWith(bus.create(uuidOf(1), 'odd-x'), 'EIO');
  assert.equal(released, 1);
  assert.deepEqual(core.devices(), []);
});

test('serve: create resolves only after it, and fails (device unregistered) when it rejects', async () => {
  const core = fastCore();
  let served: (() => void) | null = null;
  let fail = false;
  const bus = new MdevBus({
    core,
    serve: () =>
      fail
        ? Promise.reject(new VfioError('EADDRINUSE', 'socket taken'))
        : new Promise<void>((resolve) => {
            served = resolve;
          }),
  });
  const driver = new PoolDriver({ ports: 2 });
  bus.registerParent({ name: 'p', driver });
  let done = false;
  const p = bus.create(uuidOf(1), 'tpool-1').then(() => {
    done = true;
  });
  await tick();
  assert.equal(done, false);
  assert.equal(core.device(uuidOf(1))?.state, 'registered', 'registered before being served');
  assert.equal(bus.device(uuidOf(1)), undefined, 'but not listed yet');
  served!();
  await p;
  assert.ok(bus.device(uuidOf(1)));
  fail = true;
  await rejectsWith(bus.create(uuidOf(2), 'tpool-1'), 'EADDRINUSE');
  assert.equal(core.device(uuidOf(2)), undefined);
  assert.equal(driver.probed[1]!.releases, 1);
  assert.equal(driver.freePortCount, 1);
});

test('a core observer that throws on registration cannot break a create', async () => {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver({ ports: 2 });
  bus.registerParent({ name: 'p', driver });
  const observer = (): void => {
    throw new Error('observer bug');
  };
  core.on('registered', observer);
  const onWarn = () => {};
  process.on('warning', onWarn);
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  core.off('registered', observer);
  process.off('warning', onWarn);
  assert.equal(mdev.device.state, 'registered');
  assert.deepEqual(bus.heldUuids(), [uuidOf(1)]);
  assert.deepEqual(core.devices(), [mdev.device]);
  await bus.remove(uuidOf(1));
  assert.equal(driver.freePortCount, 2);
});
