import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MdevBus } from '../../src/mdev/index.js';
import { MdpyDevice, MdpyDriver } from '../../src/drivers/mdpy/index.js';
import { fastCore, isCode } from './display-device-helpers.js';

const uuidOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function setup(maxDevices?: number) {
  const bus = new MdevBus({ core: fastCore() });
  const driver = new MdpyDriver(maxDevices === undefined ? {} : { maxDevices });
  const parent = bus.registerParent({ name: 'mdpy', driver });
  return { bus, driver, parent, available: () => parent.types.map((t) => t.availableInstances) };
}

test('mdpy driver: types vga, xga, hd with the kernel sample names and descriptions', () => {
  const { parent } = setup();
  assert.deepEqual(
    parent.types.map((t) => [t.id, t.name, t.description]),
    [
      ['mdpy-vga', 'mdpy-vga', 'virtual display, 640x480 framebuffer'],
      ['mdpy-xga', 'mdpy-xga', 'virtual display, 1024x768 framebuffer'],
      ['mdpy-hd', 'mdpy-hd', 'virtual display, 1920x1080 framebuffer'],
    ],
  );
});

test('mdpy driver: each type gets its mode; four devices in all, whatever their types', async () => {
  const { bus, driver, available } = setup();
  assert.deepEqual(available(), [4, 4, 4]);
  const modes: Array<[string, number, number]> = [
    ['mdpy-vga', 640, 480],
    ['mdpy-xga', 1024, 768],
    ['mdpy-hd', 1920, 1080],
  ];
  for (const [i, [type, w, h]] of modes.entries()) {
    const mdev = await bus.create(uuidOf(i + 1), type);
    const dev = mdev.device as MdpyDevice;
    assert.ok(dev instanceof MdpyDevice);
    assert.deepEqual([dev.queryPlane().width, dev.queryPlane().height], [w, h]);
  }
  await bus.create(uuidOf(4), 'mdpy-vga');
  assert.deepEqual(available(), [0, 0, 0]);
  await assert.rejects(bus.create(uuidOf(5), 'mdpy-hd'), isCode('EUSERS'));
  await bus.remove(uuidOf(2));
  assert.deepEqual(available(), [1, 1, 1]);
  assert.equal(driver.pool.used, 3);
  for (const n of [1, 3, 4]) await bus.remove(uuidOf(n));
  assert.equal(driver.pool.used, 0);
});

test('mdpy driver: no attributes; a failed create counts nothing', async () => {
  const { bus, driver } = setup(1);
  await assert.rejects(bus.create(uuidOf(1), 'mdpy-vga', { x: '1' }), isCode('EINVAL'));
  assert.equal(driver.pool.used, 0);
  // Probe counts the device, then registering fails (the name is taken): the release uncounts it.
  const squatter = new MdpyDevice({ name: uuidOf(2), core: bus.core, width: 64, height: 64 });
  squatter.register();
  await assert.rejects(bus.create(uuidOf(2), 'mdpy-vga'), isCode('EEXIST'));
  assert.equal(driver.pool.used, 0);
  await squatter.unregister();
});
