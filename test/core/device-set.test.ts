import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioCore, VfioError } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { SetMonitor, TestDevice } from '../support/test-device.js';
import { Scheduler } from '../support/scheduler.js';
import { Prng } from '../support/prng.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

test('devices with equal keys share one set; the set lives from first register to last release', async () => {
  const core = new VfioCore();
  const a = new TestDevice({ name: 'a', core });
  const b = new TestDevice({ name: 'b', core });
  const c = new TestDevice({ name: 'c', core });
  a.register({ setKey: 'slot-1' });
  b.register({ setKey: 'slot-1' });
  c.register({ setKey: 'slot-2' });
  assert.equal(a.devSet, b.devSet);
  assert.notEqual(a.devSet, c.devSet);
  assert.equal(core.setCount, 2);
  const s1 = a.devSet!;
  await a.unregister();
  assert.equal(core.deviceSet('slot-1'), s1, 'b still holds slot-1');
  assert.deepEqual([...s1.devices], [b]);
  await b.unregister();
  assert.equal(core.deviceSet('slot-1'), undefined);
  await c.unregister();
  assert.equal(core.setCount, 0);
});

test('a device without a key has a set of its own', () => {
  const core = new VfioCore();
  const a = new TestDevice({ name: 'a', core });
  const b = new TestDevice({ name: 'b', core });
  a.register();
  b.register();
  assert.notEqual(a.devSet, b.devSet);
});

test('ops of one set never overlap, even async ones on different devices', async () => {
  const sched = new Scheduler(new Prng(7));
  const core = new VfioCore();
  const monitor = new SetMonitor();
  const point = (l: string) => sched.point(l);
  const a = new TestDevice({ name: 'a', core, point, monitor });
  const b = new TestDevice({ name: 'b', core, point, monitor });
  a.register({ setKey: 1 });
  b.register({ setKey: 1 });
  const ctx = new IommufdContext();
  const fa = a.openFile();
  const fb = b.openFile();
  const work = [fa.bindIommufd(ctx), fb.bindIommufd(ctx)];
  while (await sched.step());
  await Promise.all(work);
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    ops.push(Promise.resolve(fa.regionRead(0, 0, new Uint8Array(1))));
    ops.push(Promise.resolve(fb.regionWrite(0, 0, new Uint8Array(1))));
    ops.push(Promise.resolve(fa.reset()));
  }
  while (await sched.step());
  await Promise.all(ops);
  assert.deepEqual(monitor.violations, []);
  assert.ok(sched.steps >= 60);
});

test('hot reset info lists every device of the set, opened or not', async () => {
  const core = new VfioCore();
  const a = new TestDevice({ name: 'a', core });
  const b = new TestDevice({ name: 'b', core });
  const c = new TestDevice({ name: 'c', core });
  a.register({ setKey: 'bus', iommuGroup: 10 });
  b.register({ setKey: 'bus', iommuGroup: 11 });
  c.register({ setKey: 'other', iommuGroup: 12 });
  const f = a.openFile();
  await f.bindIommufd(new IommufdContext());
  const info = await f.getPciHotResetInfo();
  assert.deepEqual(info, [
    { name: 'a', groupId: 10, opened: true },
    { name: 'b', groupId: 11, opened: false },
  ]);
  await f.close();
});

test('hot reset resets every device of the set when the caller owns every opened one', async () => {
  const core = new VfioCore();
  const devs = ['a', 'b', 'c'].map((n) => new TestDevice({ name: n, core }));
  for (const d of devs) d.register({ setKey: 'bus' });
  const other = new TestDevice({ name: 'z', core });
  other.register({ setKey: 'elsewhere' });
  const ctx = new IommufdContext();
  const fa = devs[0]!.openFile();
  const fb = devs[1]!.openFile();
  await fa.bindIommufd(ctx);
  await fb.bindIommufd(ctx);
  devs[2]!.regs[0] = 5;
  await fa.pciHotReset();
  assert.deepEqual(
    devs.map((d) => d.resets),
    [1, 1, 1],
    'opened or not, all reset',
  );
  assert.equal(devs[2]!.regs[0], 0);
  assert.equal(other.resets, 0, 'other sets untouched');
  await fa.close();
  await fb.close();
});

test('hot reset is EPERM when an opened device of the set is bound to another context', async () => {
  const core = new VfioCore();
  const a = new TestDevice({ name: 'a', core });
  const b = new TestDevice({ name: 'b', core });
  a.register({ setKey: 'bus' });
  b.register({ setKey: 'bus' });
  const fa = a.openFile();
  const fb = b.openFile();
  await fa.bindIommufd(new IommufdContext());
  await fb.bindIommufd(new IommufdContext());
  await assert.rejects(
    Promise.resolve().then(() => fa.pciHotReset()),
    isCode('EPERM'),
  );
  assert.equal(a.resets + b.resets, 0, 'nothing was reset');
  // Two files of the SAME device in different contexts: also EPERM.
  await fb.close();
  const fa2 = a.openFile();
  await fa2.bindIommufd(new IommufdContext());
  await assert.rejects(
    Promise.resolve().then(() => fa.pciHotReset()),
    isCode('EPERM'),
  );
  await fa2.close();
  await fa.pciHotReset();
  assert.equal(a.resets, 1);
  assert.equal(b.resets, 1);
  await fa.close();
});

test('no op of the set runs during a hot reset', async () => {
  const sched = new Scheduler(new Prng(3));
  const core = new VfioCore();
  const monitor = new SetMonitor();
  const point = (l: string) => sched.point(l);
  const a = new TestDevice({ name: 'a', core, point, monitor });
  const b = new TestDevice({ name: 'b', core, point, monitor });
  a.register({ setKey: 'bus' });
  b.register({ setKey: 'bus' });
  const ctx = new IommufdContext();
  const fa = a.openFile();
  const fb = b.openFile();
  const binds = [fa.bindIommufd(ctx), fb.bindIommufd(ctx)];
  while (await sched.step());
  await Promise.all(binds);
  const work = [
    Promise.resolve(fa.pciHotReset()),
    Promise.resolve(fb.regionWrite(0, 0, Uint8Array.of(1))),
    Promise.resolve(fa.pciHotReset()),
    fb.close(),
  ];
  while (await sched.step());
  await Promise.all(work);
  assert.deepEqual(monitor.violations, []);
  assert.equal(a.resets, 2);
  const closing = fa.close();
  while (await sched.step());
  await closing;
  assert.deepEqual([a.closes, b.closes], [1, 1]);
});
