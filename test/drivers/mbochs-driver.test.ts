import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MdevBus } from '../../src/mdev/index.js';
import { MbochsDevice, MbochsDriver } from '../../src/drivers/mbochs/index.js';
import { fastCore, isCode } from './display-device-helpers.js';

const MB = 1024 * 1024;
const uuidOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function setup(poolBytes?: number) {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new MbochsDriver(poolBytes === undefined ? {} : { poolBytes });
  const parent = bus.registerParent({ name: 'mbochs', driver });
  const available = () => parent.types.map((t) => t.availableInstances);
  return { core, bus, driver, parent, available };
}

test('mbochs driver: types small, medium, large with the kernel sample names', () => {
  const { parent } = setup();
  assert.deepEqual(
    parent.types.map((t) => [t.id, t.name, t.description, t.deviceApi]),
    [
      ['mbochs-small', 'mbochs-small', 'virtual display, 4 MB video memory', 'vfio-pci'],
      ['mbochs-medium', 'mbochs-medium', 'virtual display, 16 MB video memory', 'vfio-pci'],
      ['mbochs-large', 'mbochs-large', 'virtual display, 64 MB video memory', 'vfio-pci'],
    ],
  );
});

test('mbochs driver: available_instances follow one 256 MiB pool shared by every type', async () => {
  const { bus, driver, available } = setup();
  assert.deepEqual(available(), [64, 16, 4]);
  const large = await bus.create(uuidOf(1), 'mbochs-large');
  assert.ok(large.device instanceof MbochsDevice);
  assert.equal(large.device.memoryBytes, 64 * MB);
  await bus.create(uuidOf(2), 'mbochs-medium');
  assert.deepEqual(available(), [44, 11, 2]);
  assert.equal(driver.pool.used, 80 * MB);
  await bus.remove(uuidOf(1));
  assert.deepEqual(available(), [60, 15, 3], 'memory comes back once the device is released');
  await bus.remove(uuidOf(2));
  assert.equal(driver.pool.used, 0);
});

test('mbochs driver: an exhausted pool refuses creates with ENOSPC, through the bus and in probe', async () => {
  const { bus, driver, parent, available, core } = setup(68 * MB);
  await bus.create(uuidOf(1), 'mbochs-large');
  assert.deepEqual(available(), [1, 0, 0]);
  await assert.rejects(bus.create(uuidOf(2), 'mbochs-medium'), isCode('ENOSPC'));
  await bus.create(uuidOf(3), 'mbochs-small');
  assert.deepEqual(available(), [0, 0, 0]);
  // The driver's own answer when asked past the pool (the bus asks availability first).
  const type = parent.type('mbochs-small')!;
  assert.throws(() => driver.probe({ uuid: uuidOf(4), type, parent, attrs: {}, core }), isCode('ENOSPC'));
  assert.equal(driver.pool.free, 0, 'a refused probe takes nothing');
  await bus.remove(uuidOf(1));
  await bus.remove(uuidOf(3));
});

test('mbochs driver: no attributes; a failed create gives the memory back', async () => {
  const { bus, driver, core } = setup();
  await assert.rejects(bus.create(uuidOf(1), 'mbochs-small', { x: '1' }), isCode('EINVAL'));
  assert.equal(driver.pool.used, 0);
  // Probe takes the memory, then registering fails (the name is taken): the release gives it back.
  const squatter = new MbochsDevice({ name: uuidOf(2), core, memoryBytes: 4 * MB, maxWidth: 0, maxHeight: 0 });
  squatter.register();
  await assert.rejects(bus.create(uuidOf(2), 'mbochs-large'), isCode('EEXIST'));
  assert.equal(driver.pool.used, 0);
  await squatter.unregister();
});
