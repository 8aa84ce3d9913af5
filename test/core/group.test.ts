import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioContainer, VfioCore, VfioError } from '../../src/core/index.js';
import { IommufdContext, MemoryBacking } from '../../src/iommufd/index.js';
import { TestDevice } from '../support/test-device.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

function twoInGroup() {
  const core = new VfioCore();
  const a = new TestDevice({ name: 'a', core });
  const b = new TestDevice({ name: 'b', core });
  a.register({ iommuGroup: 5 });
  b.register({ iommuGroup: 5 });
  return { core, a, b, group: core.group(5) };
}

test('devices join the group they name; unnamed ones get groups of their own', () => {
  const { core, a, b, group } = twoInGroup();
  assert.equal(a.group, group);
  assert.equal(b.group, group);
  assert.deepEqual(group.devices, [a, b]);
  const c = new TestDevice({ name: 'c', core });
  c.register();
  assert.notEqual(c.group, group);
  assert.deepEqual(c.group!.devices, [c]);
  assert.throws(() => new TestDevice({ name: 'x', core }).register({ iommuGroup: -1 }), isCode('EINVAL'));
  assert.equal(core.device('x'), undefined, 'a refused register changes nothing');
});

test('a group is viable only when every device is bound to uvfio', () => {
  const { group } = twoInGroup();
  assert.equal(group.viable, true);
  group.addForeignDevice('0000:00:1f.3');
  assert.equal(group.viable, false);
  assert.throws(() => group.setContainer(new VfioContainer()), isCode('EPERM'));
  assert.throws(() => group.removeForeignDevice('nope'), isCode('ENOENT'));
  group.removeForeignDevice('0000:00:1f.3');
  assert.equal(group.viable, true);
});

test('container: set IOMMU needs a group, once; map needs the IOMMU', () => {
  const { group } = twoInGroup();
  const container = new VfioContainer();
  assert.throws(() => container.setIommu(), isCode('EINVAL'));
  const mem = new MemoryBacking(new Uint8Array(4096));
  assert.throws(() => container.map(0, 4096, mem), isCode('EINVAL'));
  group.setContainer(container);
  assert.throws(() => group.setContainer(container), isCode('EINVAL'));
  assert.throws(() => group.addForeignDevice('late'), isCode('EBUSY'));
  container.setIommu();
  assert.throws(() => container.setIommu(), isCode('EBUSY'));
  container.map(0, 4096, mem);
  assert.equal(container.unmap(0, 4096), 4096);
  assert.equal(container.unmapAll(), 0);
});

test('group path: get a bound device file by name; errors for missing setup and names', async () => {
  const { a, group } = twoInGroup();
  await assert.rejects(group.getDeviceFile('a'), isCode('EINVAL'), 'no container');
  const container = new VfioContainer();
  group.setContainer(container);
  await assert.rejects(group.getDeviceFile('a'), isCode('EINVAL'), 'no IOMMU');
  container.setIommu();
  await assert.rejects(group.getDeviceFile('nope'), isCode('ENODEV'));
  const f = await group.getDeviceFile('a');
  assert.equal(f.state, 'bound');
  assert.equal(f.path, 'group');
  assert.equal(a.opens, 1);
  const f2 = await group.getDeviceFile('a');
  assert.equal(a.opens, 1, 'the group path shares one open too');
  // Container mappings reach the device.
  const mem = new Uint8Array(4096);
  container.map(0x10000, 4096, new MemoryBacking(mem));
  a.dma!.writeSync(0x10000, Uint8Array.of(0xaa));
  assert.equal(mem[0], 0xaa);
  assert.throws(() => group.unsetContainer(), isCode('EBUSY'));
  await f.close();
  await f2.close();
  assert.equal(a.closes, 1);
  group.unsetContainer();
  assert.throws(() => group.unsetContainer(), isCode('EINVAL'));
  assert.equal(container.iommuSet, false, 'the last group out resets the container');
});

test('cdev and group paths exclude each other (EBUSY)', async () => {
  const { a, group } = twoInGroup();
  const container = new VfioContainer();
  group.setContainer(container);
  container.setIommu();
  const cdev = a.openFile();
  await cdev.bindIommufd(new IommufdContext());
  await assert.rejects(group.getDeviceFile('a'), isCode('EBUSY'));
  await cdev.close();
  const viaGroup = await group.getDeviceFile('a');
  const cdev2 = a.openFile();
  await assert.rejects(cdev2.bindIommufd(new IommufdContext()), isCode('EBUSY'));
  assert.equal(cdev2.state, 'open');
  await viaGroup.close();
  await cdev2.bindIommufd(new IommufdContext());
  await cdev2.close();
  assert.equal(a.opens, 3);
  assert.equal(a.closes, 3);
});

test('a device going away cannot be opened through its group', async () => {
  const { a, group } = twoInGroup();
  const container = new VfioContainer();
  group.setContainer(container);
  container.setIommu();
  const f = await group.getDeviceFile('a');
  const p = a.unregister();
  await assert.rejects(group.getDeviceFile('a'), isCode('ENODEV'));
  await f.close();
  await p;
  await assert.rejects(group.getDeviceFile('a'), isCode('ENODEV'));
});
