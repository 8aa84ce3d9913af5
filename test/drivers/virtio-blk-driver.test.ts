/**
 * The virtio-blk parent on the mdev bus: its types, and the checks of the
 * attribute `path` at create, with the errno each failure carries.
 */
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MdevBus } from '../../src/mdev/index.js';
import { VirtioBlkDevice, VirtioBlkDriver } from '../../src/drivers/virtio-blk/index.js';
import { fastCore, isCode } from './display-device-helpers.js';

const uuidOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const dir = mkdtempSync(join(tmpdir(), 'uvfio-vblk-drv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function image(name: string, bytes = 1 << 20): string {
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(bytes));
  return p;
}

function setup(maxDevices?: number) {
  const bus = new MdevBus({ core: fastCore() });
  const driver = new VirtioBlkDriver(maxDevices === undefined ? {} : { maxDevices });
  const parent = bus.registerParent({ name: 'virtio-blk', driver });
  return { bus, driver, parent };
}

test('virtio-blk parent: types rw and ro; a device serves its image, read-only for ro', async () => {
  const { bus, parent } = setup();
  assert.deepEqual(
    parent.types.map((t) => [t.id, t.availableInstances]),
    [
      ['virtio-blk-rw', 16],
      ['virtio-blk-ro', 16],
    ],
  );
  const path = image('a.img', 3 * 512 + 100);
  const rw = (await bus.create(uuidOf(1), 'virtio-blk-rw', { path })).device as VirtioBlkDevice;
  assert.ok(rw instanceof VirtioBlkDevice);
  assert.deepEqual([rw.capacity, rw.backend.readOnly], [3, false], 'capacity in whole sectors');
  const ro = (await bus.create(uuidOf(2), 'virtio-blk-ro', { path: image('b.img') })).device as VirtioBlkDevice;
  assert.equal(ro.backend.readOnly, true);
  assert.deepEqual(
    parent.types.map((t) => t.availableInstances),
    [14, 14],
  );
  await bus.remove(uuidOf(1));
  await bus.remove(uuidOf(2));
});

test('virtio-blk parent: path is required, absolute, an existing regular file of a sector or more', async () => {
  const { bus, driver } = setup();
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw'), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: 'relative.img' }), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: join(dir, 'missing.img') }), isCode('ENOENT'));
  mkdirSync(join(dir, 'sub'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: join(dir, 'sub') }), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-ro', { path: join(dir, 'sub') }), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: image('tiny.img', 511) }), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: image('c.img'), size: '1G' }), isCode('EINVAL'));
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path: '/dev/null' }), isCode('EINVAL'));
  assert.equal(driver.pool.used, 0, 'a failed create holds nothing');
});

test('virtio-blk parent: an image the daemon may not write is EACCES for rw, fine for ro', async (t) => {
  if (process.getuid?.() === 0) {
    t.skip('root opens any file');
    return;
  }
  const { bus } = setup();
  const path = image('readonly.img');
  chmodSync(path, 0o444);
  await assert.rejects(bus.create(uuidOf(1), 'virtio-blk-rw', { path }), isCode('EACCES'));
  await bus.create(uuidOf(1), 'virtio-blk-ro', { path });
  await bus.remove(uuidOf(1));
});

test('virtio-blk parent: one writer per file, by any name; readers share it; a removed device lets go', async () => {
  const { bus, driver } = setup();
  const path = image('shared.img');
  const alias = join(dir, 'alias.img');
  symlinkSync(path, alias);
  const hard = join(dir, 'hard.img');
  linkSync(path, hard);
  await bus.create(uuidOf(1), 'virtio-blk-rw', { path });
  await assert.rejects(bus.create(uuidOf(2), 'virtio-blk-rw', { path: alias }), isCode('EBUSY'));
  await assert.rejects(bus.create(uuidOf(2), 'virtio-blk-ro', { path: hard }), isCode('EBUSY'));
  assert.equal(driver.pool.used, 1);
  await bus.remove(uuidOf(1));
  await bus.create(uuidOf(2), 'virtio-blk-ro', { path });
  await bus.create(uuidOf(3), 'virtio-blk-ro', { path: alias });
  await assert.rejects(bus.create(uuidOf(4), 'virtio-blk-rw', { path: hard }), isCode('EBUSY'));
  await bus.remove(uuidOf(2));
  await assert.rejects(bus.create(uuidOf(4), 'virtio-blk-rw', { path }), isCode('EBUSY'), 'one reader is still there');
  await bus.remove(uuidOf(3));
  await bus.create(uuidOf(4), 'virtio-blk-rw', { path });
  await bus.remove(uuidOf(4));
  assert.equal(driver.pool.used, 0);
});

test('virtio-blk parent: concurrent creates of one image: one writer wins', async () => {
  const { bus } = setup();
  const path = image('race.img');
  const results = await Promise.allSettled([1, 2, 3].map((n) => bus.create(uuidOf(n), 'virtio-blk-rw', { path })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.ok(isCode('EBUSY')(r.reason));
  for (const n of [1, 2, 3]) if (bus.device(uuidOf(n))) await bus.remove(uuidOf(n));
});

test('virtio-blk parent: its count of devices, both types together', async () => {
  const { bus, parent } = setup(2);
  await bus.create(uuidOf(1), 'virtio-blk-rw', { path: image('d1.img') });
  await bus.create(uuidOf(2), 'virtio-blk-ro', { path: image('d2.img') });
  assert.deepEqual(
    parent.types.map((t) => t.availableInstances),
    [0, 0],
  );
  await assert.rejects(bus.create(uuidOf(3), 'virtio-blk-ro', { path: image('d3.img') }), isCode('EUSERS'));
  await bus.remove(uuidOf(1));
  await bus.remove(uuidOf(2));
});
