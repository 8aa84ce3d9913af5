import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MdevBus, type MdevDevice } from '../../src/mdev/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { PoolDriver, type PoolDevice } from './pool-driver.js';
import { fastCore, rejectsWith, uuidOf, Gates, tick } from './helpers.js';
import { until } from '../support/until.js';

function setup(options: ConstructorParameters<typeof PoolDriver>[0] = {}) {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver({ ports: 4, ...options });
  const parent = bus.registerParent({ name: 'p', driver });
  return { core, bus, driver, parent };
}

test('remove: EINVAL for a malformed UUID, ENODEV for one not listed', async () => {
  const gates = new Gates();
  const { bus } = setup({ point: gates.point });
  await rejectsWith(bus.remove('nope'), 'EINVAL');
  await rejectsWith(bus.remove(uuidOf(1)), 'ENODEV');
  const creating = bus.create(uuidOf(1), 'tpool-1');
  await rejectsWith(bus.remove(uuidOf(1)), 'ENODEV'); // still being created
  gates.open('*');
  await creating;
  await bus.remove(uuidOf(1).toUpperCase());
  await rejectsWith(bus.remove(uuidOf(1)), 'ENODEV');
});

test('remove: of concurrent removers exactly one succeeds, the others get ENODEV', async () => {
  const gates = new Gates();
  const { core, bus, driver, parent } = setup({ point: gates.point });
  gates.open(`probe ${uuidOf(1)}`);
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  const events: string[] = [];
  for (const e of ['removing', 'removed', 'restored'] as const) bus.on(e, () => events.push(e));
  const removers = Array.from({ length: 5 }, () => bus.remove(mdev.uuid));
  const settled = Promise.allSettled(removers); // handles the losers' rejections at once
  assert.equal(bus.device(mdev.uuid), undefined, 'unlinked before anything else');
  assert.equal(mdev.state, 'removing');
  await tick();
  gates.open('*');
  const results = await settled;
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) {
    if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'ENODEV');
  }
  assert.equal(driver.removeCalls, 1, 'the driver is asked once');
  assert.equal(driver.probed[0]!.releases, 1);
  assert.equal(mdev.state, 'removed');
  assert.deepEqual(events, ['removing', 'removed']);
  assert.equal(core.device(mdev.uuid), undefined);
  assert.equal(parent.type('tpool-1')!.availableInstances, 4);
});

test('remove with a client connected: REQ, wait for it, then gone', async () => {
  const { core, bus, driver } = setup();
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  const file = mdev.device.openFile();
  await file.bindIommufd(new IommufdContext());
  const dev = driver.probed[0]!;
  let asked = 0;
  // (a cast, not an annotation: set in a callback, which narrowing cannot see)
  let letGo = null as (() => void) | null;
  dev.requestListeners.add(() => {
    asked++;
    if (asked === 2) letGo = () => void file.close(); // the client answers the second nudge
  });
  let gone = false;
  const removing = bus.remove(mdev.uuid).then(() => {
    gone = true;
  });
  await until(() => letGo !== null, 'the second REQ nudge');
  // Meanwhile: unlisted, no new opens, the open file still works.
  assert.equal(gone, false);
  assert.equal(bus.device(mdev.uuid), undefined);
  assert.throws(
    () => mdev.device.openFile(),
    (e: unknown) => (e as { code?: string }).code === 'ENODEV',
  );
  const buf = new Uint8Array(1);
  await file.regionWrite(0, 0, Uint8Array.of(7));
  await file.regionRead(0, 0, buf);
  assert.equal(buf[0], 7);
  assert.equal(dev.releases, 0);
  letGo!();
  await removing;
  assert.ok(asked >= 2);
  assert.equal(dev.releases, 1);
  assert.deepEqual(driver.violations(), []);
  assert.deepEqual(core.devices(), []);
});

test('a driver that refuses keeps its device, listed and working', async () => {
  let refuse = true;
  const { bus, driver, parent } = setup({ refuse: () => refuse });
  const mdev = await bus.create(uuidOf(1), 'tpool-2');
  const file = mdev.device.openFile();
  await file.bindIommufd(new IommufdContext());
  const restored: MdevDevice[] = [];
  bus.on('restored', (m) => restored.push(m));
  await rejectsWith(bus.remove(mdev.uuid), 'EBUSY');
  assert.deepEqual(restored, [mdev]);
  assert.equal(bus.device(mdev.uuid), mdev);
  assert.equal(mdev.state, 'active');
  assert.equal(mdev.device.state, 'registered');
  assert.equal(parent.type('tpool-2')!.availableInstances, 1, 'still holding its ports');
  await file.regionWrite(0, 0, Uint8Array.of(1)); // still working
  const second = mdev.device.openFile(); // still openable
  await second.close();
  refuse = false;
  const removing = bus.remove(mdev.uuid);
  (driver.probed[0] as PoolDevice).requestListeners.add(() => void file.close());
  await removing;
  assert.equal(parent.type('tpool-2')!.availableInstances, 2);
});

test("a device unregistered behind the bus's back leaves the list like a removed one", async () => {
  const { bus, parent } = setup();
  const mdev = await bus.create(uuidOf(1), 'tpool-1');
  const removed: MdevDevice[] = [];
  bus.on('removed', (m) => removed.push(m));
  const unregistering = mdev.device.unregister();
  assert.equal(bus.device(mdev.uuid), undefined);
  await rejectsWith(bus.remove(mdev.uuid), 'ENODEV');
  await unregistering;
  await until(() => removed.length > 0, "the 'removed' event");
  assert.equal(mdev.state, 'removed');
  assert.deepEqual(bus.heldUuids(), []);
  assert.equal(parent.type('tpool-1')!.availableInstances, 4);
});

test('a throwing event listener does not break the bus', async () => {
  const { bus } = setup();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  bus.on('created', () => {
    throw new Error('observer bug');
  });
  try {
    const mdev = await bus.create(uuidOf(1), 'tpool-1');
    assert.equal(bus.device(mdev.uuid), mdev);
    await bus.remove(mdev.uuid);
    await tick();
    assert.ok(warnings.some((w) => w.includes('observer bug')));
  } finally {
    process.off('warning', onWarning);
  }
});
