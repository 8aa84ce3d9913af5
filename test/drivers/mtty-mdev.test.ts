import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioCore, VfioError } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { MdevBus, type MdevParent } from '../../src/mdev/index.js';
import { MttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { MttyDriver, MTTY_POOL_PORTS } from '../../src/drivers/mtty/mtty-driver.js';

const uuidOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;

function setup(ports?: number) {
  const core = new VfioCore({ requestBackoffMs: () => 1 });
  const bus = new MdevBus({ core });
  const driver = new MttyDriver({ ports });
  const parent = bus.registerParent({ name: 'mtty', driver });
  return { core, bus, driver, parent };
}

function available(parent: MdevParent): [number, number] {
  return [parent.type('mtty-1')!.availableInstances, parent.type('mtty-2')!.availableInstances];
}

test('types mtty-1 "Single port serial" and mtty-2 "Dual port serial", vfio-pci, from a pool of 24 ports', () => {
  const { parent, driver } = setup();
  assert.deepEqual(
    parent.types.map((t) => [t.id, t.name, t.deviceApi, t.description]),
    [
      ['mtty-1', 'Single port serial', 'vfio-pci', undefined],
      ['mtty-2', 'Dual port serial', 'vfio-pci', undefined],
    ],
  );
  assert.equal(MTTY_POOL_PORTS, 24);
  assert.equal(driver.pool.free, 24);
  assert.deepEqual(available(parent), [24, 12]);
});

test('available_instances of both types follow the one pool', async () => {
  const { bus, parent, driver } = setup();
  const two = await bus.create(uuidOf(1), 'mtty-2');
  assert.ok(two.device instanceof MttyDevice);
  assert.equal(two.device.ports, 2);
  assert.deepEqual(available(parent), [22, 11]);
  const one = await bus.create(uuidOf(2), 'mtty-1');
  assert.equal((one.device as MttyDevice).ports, 1);
  assert.deepEqual(available(parent), [21, 10], 'an odd port left makes no mtty-2');
  assert.equal(driver.pool.free, 21);
  await bus.remove(uuidOf(1));
  assert.deepEqual(available(parent), [23, 11]);
  await bus.remove(uuidOf(2));
  assert.deepEqual(available(parent), [24, 12]);
});

test('an exhausted pool refuses both types with EUSERS, and a removal refills it', async () => {
  const { bus, parent } = setup();
  for (let i = 0; i < 11; i++) await bus.create(uuidOf(i), 'mtty-2');
  await bus.create(uuidOf(100), 'mtty-1');
  assert.deepEqual(available(parent), [1, 0]);
  await assert.rejects(bus.create(uuidOf(101), 'mtty-2'), isCode('EUSERS'));
  await bus.create(uuidOf(102), 'mtty-1');
  assert.deepEqual(available(parent), [0, 0]);
  await assert.rejects(bus.create(uuidOf(103), 'mtty-1'), isCode('EUSERS'));
  await bus.remove(uuidOf(3));
  assert.deepEqual(available(parent), [2, 1]);
  await bus.create(uuidOf(104), 'mtty-2');
  assert.deepEqual(available(parent), [0, 0]);
});

test('concurrent creates never overshoot the pool', async () => {
  const { bus, driver } = setup(5);
  const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => bus.create(uuidOf(i), i % 2 ? 'mtty-1' : 'mtty-2')));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  assert.ok(results.every((r) => r.status === 'fulfilled' || isCode('EUSERS')(r.reason)));
  assert.ok(ok >= 3);
  const held = bus.devices().reduce((n, d) => n + (d.device as MttyDevice).ports, 0);
  assert.equal(held + driver.pool.free, 5);
});

test('ports come back only once the removed card is released, after its client let go', async () => {
  const { bus, parent, core } = setup();
  const mdev = await bus.create(uuidOf(1), 'mtty-2');
  const file = core.openFile(mdev.uuid);
  await file.bindIommufd(new IommufdContext());
  const removed = bus.remove(uuidOf(1));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(available(parent), [22, 11], 'still held while the client is connected');
  await file.close();
  await removed;
  assert.deepEqual(available(parent), [24, 12]);
});

test('mtty takes no attributes: EINVAL, and no port is taken', async () => {
  const { bus, parent } = setup();
  await assert.rejects(bus.create(uuidOf(1), 'mtty-1', { baud: '9600' }), isCode('EINVAL'));
  assert.deepEqual(available(parent), [24, 12]);
});

test('each parent has its own pool', async () => {
  const { bus, parent } = setup(2);
  const other = bus.registerParent({ name: 'mtty-b', driver: new MttyDriver({ ports: 2 }) });
  await bus.create(uuidOf(1), parent.type('mtty-2')!);
  assert.deepEqual(available(parent), [0, 0]);
  assert.deepEqual(available(other), [2, 1]);
  await bus.unregisterParent(parent);
  await bus.unregisterParent(other);
});

test('a pool size must be a whole number', () => {
  assert.throws(() => new MttyDriver({ ports: -1 }), isCode('EINVAL'));
  assert.throws(() => new MttyDriver({ ports: 1.5 }), isCode('EINVAL'));
});
