import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MdevBus, SysfsView } from '../../src/mdev/index.js';
import { PoolDriver } from './pool-driver.js';
import { fastCore, rejectsWith, uuidOf } from './helpers.js';
import { VfioError } from '../../src/core/index.js';
import { until } from '../support/until.js';

const TYPES = 'class/mdev_bus/p/mdev_supported_types';
const T1 = `${TYPES}/tpool-1`;

function setup() {
  const core = fastCore();
  const bus = new MdevBus({ core });
  const driver = new PoolDriver({ ports: 3 });
  bus.registerParent({ name: 'p', driver });
  return { core, bus, driver, view: new SysfsView(bus) };
}

function throwsWith(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VfioError && e.code === code);
}

test("types read with the kernel's attribute names", () => {
  const { view } = setup();
  assert.deepEqual(view.list(''), ['bus', 'class']);
  assert.deepEqual(view.list('class/mdev_bus'), ['p']);
  assert.deepEqual(view.list(TYPES), ['tpool-1', 'tpool-2']);
  assert.deepEqual(view.list(T1), ['available_instances', 'create', 'description', 'device_api', 'devices', 'name']);
  assert.equal(view.read(`${T1}/name`), 'Single port\n');
  assert.equal(view.read(`${T1}/description`), 'one port\n');
  assert.equal(view.read(`${T1}/device_api`), 'vfio-pci\n');
  assert.equal(view.read(`${T1}/available_instances`), '3\n');
  assert.equal(view.read(`/${TYPES}/tpool-2/./available_instances`), '1\n');
  assert.deepEqual(view.list(`${T1}/devices`), []);
  assert.deepEqual(view.stat(`${T1}/create`), { kind: 'file', readable: false, writable: true });
  assert.deepEqual(view.stat(`${T1}/name`), { kind: 'file', readable: true, writable: false });
});

test('a type without a description has no description file', () => {
  const bus = new MdevBus({ core: fastCore() });
  bus.registerParent({ name: 'q', driver: new PoolDriver({ name: 'plain' }), types: [{ name: 'x', maxInstances: 2 }] });
  const view = new SysfsView(bus);
  assert.deepEqual(view.list('class/mdev_bus/q/mdev_supported_types/plain-x'), ['available_instances', 'create', 'device_api', 'devices', 'name']);
  assert.equal(view.read('class/mdev_bus/q/mdev_supported_types/plain-x/name'), 'x\n', 'the type name when no pretty name');
});

test("write a UUID to create, 1 to remove; links lead where sysfs's do", async () => {
  const { bus, view } = setup();
  const u = uuidOf(0xabc);
  await view.write(`${T1}/create`, `${u.toUpperCase()}\n`);
  assert.ok(bus.device(u));
  assert.equal(view.read(`${T1}/available_instances`), '2\n');
  assert.equal(view.read(`${TYPES}/tpool-2/available_instances`), '1\n', 'the pool is shared');
  assert.deepEqual(view.list(`${T1}/devices`), [u]);
  assert.equal(view.readlink(`${T1}/devices/${u}`), `../../../${u}`);
  assert.deepEqual(view.list('class/mdev_bus/p'), [u, 'mdev_supported_types']);
  assert.deepEqual(view.list(`class/mdev_bus/p/${u}`), ['mdev_type', 'remove']);
  assert.equal(view.readlink(`class/mdev_bus/p/${u}/mdev_type`), '../mdev_supported_types/tpool-1');
  assert.deepEqual(view.list('bus/mdev/devices'), [u]);
  assert.equal(view.readlink(`bus/mdev/devices/${u}`), `../../../class/mdev_bus/p/${u}`);
  assert.deepEqual(view.stat(`bus/mdev/devices/${u}`), { kind: 'link', target: `../../../class/mdev_bus/p/${u}` });
  // Through two links, as `cat /sys/bus/mdev/devices/$U/mdev_type/name` does.
  assert.equal(view.read(`bus/mdev/devices/${u}/mdev_type/name`), 'Single port\n');
  assert.deepEqual(view.list(`bus/mdev/devices/${u}/mdev_type/devices`), [u]);

  await view.write(`bus/mdev/devices/${u}/remove`, '0'); // zero does nothing
  assert.ok(bus.device(u));
  await view.write(`bus/mdev/devices/${u}/remove`, '1\n');
  assert.equal(bus.device(u), undefined);
  assert.equal(view.exists(`bus/mdev/devices/${u}`), false);
  assert.deepEqual(view.list(`${T1}/devices`), []);
  assert.equal(view.read(`${T1}/available_instances`), '3\n');
});

test('the files answer with the errnos of the bus and of sysfs', async () => {
  const { bus, view } = setup();
  const u = uuidOf(1);
  await rejectsWith(view.write(`${T1}/create`, 'not-a-uuid'), 'EINVAL');
  await rejectsWith(view.write(`${T1}/create`, `${u}\n\n`), 'EINVAL');
  await rejectsWith(view.write(`${T1}/create`, ''), 'EINVAL');
  await view.write(`${T1}/create`, u);
  await rejectsWith(view.write(`${T1}/create`, u), 'EEXIST');
  await view.write(`${TYPES}/tpool-2/create`, uuidOf(2));
  await rejectsWith(view.write(`${T1}/create`, uuidOf(3)), 'EUSERS');
  await rejectsWith(view.write(`bus/mdev/devices/${u}/remove`, 'yes'), 'EINVAL');
  await rejectsWith(view.write(`bus/mdev/devices/${u}/remove`, '-1'), 'EINVAL');
  await rejectsWith(view.write(`${T1}/name`, 'x'), 'EACCES');
  await rejectsWith(view.write(T1, 'x'), 'EINVAL');
  await rejectsWith(view.write(`${TYPES}/tpool-9/create`, uuidOf(4)), 'ENOENT');
  throwsWith(() => view.read(`${T1}/create`), 'EACCES');
  throwsWith(() => view.read(`bus/mdev/devices/${u}/remove`), 'EACCES');
  throwsWith(() => view.read(T1), 'EINVAL');
  throwsWith(() => view.read(`${T1}/nope`), 'ENOENT');
  throwsWith(() => view.read(`${T1}/name/deeper`), 'ENOENT');
  throwsWith(() => view.list(`${T1}/name`), 'EINVAL');
  throwsWith(() => view.readlink(`${T1}/name`), 'EINVAL');
  await view.write(`bus/mdev/devices/${u}/remove`, '0x1');
  await rejectsWith(view.write(`bus/mdev/devices/${u}/remove`, '1'), 'ENOENT');
  assert.equal(bus.devices().length, 1);
});

test('create on a parent that is going away is ENODEV through the file too', async () => {
  const { bus, view, driver } = setup();
  void driver;
  await view.write(`${T1}/create`, uuidOf(1));
  const file = bus.device(uuidOf(1))!.device.openFile(); // keeps unregistration pending
  const going = bus.unregisterParent('p');
  await rejectsWith(view.write(`${T1}/create`, uuidOf(2)), 'ENODEV');
  await file.close();
  await going;
  assert.equal(view.exists('class/mdev_bus/p'), false);
});

test('mirrorTo writes a real tree and keeps it in step with the bus', async () => {
  const { bus, view } = setup();
  const dir = await mkdtemp(join(tmpdir(), 'uvfio-mdev-'));
  try {
    const mirror = await view.mirrorTo(dir);
    const t1 = join(dir, T1);
    assert.equal(await readFile(join(t1, 'available_instances'), 'utf8'), '3\n');
    assert.equal(await readFile(join(t1, 'device_api'), 'utf8'), 'vfio-pci\n');
    assert.equal((await stat(join(t1, 'name'))).mode & 0o777, 0o444);
    assert.equal((await stat(join(t1, 'create'))).mode & 0o777, 0o200);

    const u = uuidOf(7);
    await view.write(`${T1}/create`, u);
    await mirror.flush();
    assert.equal(await readFile(join(t1, 'available_instances'), 'utf8'), '2\n');
    assert.equal(await readFile(join(dir, TYPES, 'tpool-2', 'available_instances'), 'utf8'), '1\n');
    assert.equal(await readlink(join(dir, 'bus/mdev/devices', u)), `../../../class/mdev_bus/p/${u}`);
    assert.equal(await readFile(join(dir, 'bus/mdev/devices', u, 'mdev_type', 'name'), 'utf8'), 'Single port\n', 'the links resolve on disk');
    assert.deepEqual(await readdir(join(t1, 'devices')), [u]);

    await bus.remove(u);
    await mirror.flush();
    assert.deepEqual(await readdir(join(dir, 'bus/mdev/devices')), []);
    assert.deepEqual((await readdir(join(dir, 'class/mdev_bus/p'))).sort(), ['mdev_supported_types']);
    assert.equal(await readFile(join(t1, 'available_instances'), 'utf8'), '3\n');

    await bus.unregisterParent('p');
    await mirror.flush();
    assert.deepEqual(await readdir(join(dir, 'class/mdev_bus')), []);
    await mirror.close();
    bus.registerParent({ name: 'late', driver: new PoolDriver() });
    await mirror.flush();
    assert.deepEqual(await readdir(join(dir, 'class/mdev_bus')), [], 'a closed mirror tracks nothing');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('after a sync that failed half-way, the mirror drops what is gone as well', async () => {
  const { bus, view } = setup();
  const dir = await mkdtemp(join(tmpdir(), 'uvfio-mdev-'));
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const mirror = await view.mirrorTo(dir);
    const [a, b] = [uuidOf(1), uuidOf(2)];
    await bus.create(a, 'tpool-1');
    await mirror.flush();
    // A file where b's directory goes makes the next sync fail part-way.
    const blocker = join(dir, 'class/mdev_bus/p', b);
    await writeFile(blocker, '');
    await bus.create(b, 'tpool-1');
    await mirror.flush();
    await until(() => warnings.length > 0, 'the warning of the failed sync'); // emitted on the next tick
    assert.equal(warnings.length, 1);
    await rm(blocker);
    await bus.remove(a);
    await mirror.flush();
    assert.deepEqual((await readdir(join(dir, 'class/mdev_bus/p'))).sort(), [b, 'mdev_supported_types']);
    assert.deepEqual(await readdir(join(dir, 'bus/mdev/devices')), [b]);
    assert.equal(await readFile(join(dir, T1, 'available_instances'), 'utf8'), '2\n');
    await mirror.close();
  } finally {
    process.off('warning', onWarning);
    await rm(dir, { recursive: true, force: true });
  }
});
