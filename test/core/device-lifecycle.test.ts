import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioCore, VfioError } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { TestDevice } from '../support/test-device.js';

/** A core whose back-off waits are immediate steps, counted. */
function fastCore(): VfioCore {
  return new VfioCore({ requestBackoffMs: () => 1 });
}

function rejectsWith(p: unknown, code: string): Promise<void> {
  return assert.rejects(
    Promise.resolve().then(() => p),
    (e: unknown) => e instanceof VfioError && e.code === code,
  );
}
function throwsWith(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VfioError && e.code === code);
}

test('register makes a device visible; names are unique; states advance', async () => {
  const core = fastCore();
  const dev = new TestDevice({ name: 'd0', core });
  assert.equal(dev.state, 'initialized');
  throwsWith(() => dev.openFile(), 'ENODEV');
  dev.register();
  assert.equal(dev.state, 'registered');
  assert.equal(core.device('d0'), dev);
  throwsWith(() => dev.register(), 'EINVAL');
  throwsWith(() => new TestDevice({ name: 'd0', core }).register(), 'EEXIST');
  throwsWith(() => new TestDevice({ name: '', core }), 'EINVAL');
  await dev.unregister();
  assert.equal(dev.state, 'released');
  assert.equal(core.device('d0'), undefined);
  assert.equal(dev.releases, 1);
  await dev.unregister(); // idempotent: the same, settled promise
  assert.equal(dev.releases, 1);
});

test('unregister of a device never registered is EINVAL', async () => {
  const dev = new TestDevice({ name: 'x', core: fastCore() });
  await rejectsWith(dev.unregister(), 'EINVAL');
});

test('a device registered with another core is refused', () => {
  const a = fastCore();
  const b = fastCore();
  const dev = new TestDevice({ name: 'x', core: a });
  assert.throws(
    () => b.registerDevice(dev, {}),
    (e: unknown) => e instanceof VfioError && e.code === 'EINVAL',
  );
});

test('unregister with no open file resolves at once and releases exactly once', async () => {
  const core = fastCore();
  const dev = new TestDevice({ name: 'd', core });
  dev.register();
  const p1 = dev.unregister();
  const p2 = dev.unregister();
  assert.equal(p1, p2, 'a second unregister returns the same promise');
  await p1;
  assert.deepEqual(dev.requests, [], 'nobody to nudge');
  assert.equal(dev.releases, 1);
  assert.equal(core.setCount, 0);
});

test('unregister: new opens fail at once, open files keep working, request nudges with back-off, resolves after last close', async () => {
  const core = fastCore();
  const dev = new TestDevice({ name: 'd', core });
  dev.register();
  const ctx = new IommufdContext();
  const f = dev.openFile();
  await f.bindIommufd(ctx);
  let resolved = false;
  const events: string[] = [];
  core.on('unregistering', (d) => events.push(`unregistering:${d.name}`));
  core.on('released', (d) => events.push(`released:${d.name}`));
  const unreg = dev.unregister().then(() => {
    resolved = true;
  });
  assert.equal(dev.state, 'unregistering');
  assert.deepEqual(events, ['unregistering:d']);
  assert.deepEqual(dev.requests, [0], 'the first nudge is immediate');
  assert.throws(
    () => dev.openFile(),
    (e: unknown) => e instanceof VfioError && e.code === 'ENODEV',
  );
  assert.throws(
    () => core.openFile('d'),
    (e: unknown) => e instanceof VfioError && e.code === 'ENODEV',
  );
  // The open file still works while unregister waits.
  await f.regionWrite(0, 0, Uint8Array.of(7));
  const out = new Uint8Array(1);
  await f.regionRead(0, 0, out);
  assert.equal(out[0], 7);
  // Let a few back-off rounds pass.
  for (let i = 0; i < 30 && dev.requests.length < 3; i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(dev.requests.length >= 3, `request called repeatedly (${dev.requests.length})`);
  assert.deepEqual(
    dev.requests,
    dev.requests.map((_, i) => i),
    'count increments per nudge',
  );
  assert.equal(resolved, false);
  assert.equal(dev.releases, 0);
  await f.close();
  await unreg;
  assert.equal(dev.releases, 1);
  assert.equal(dev.state, 'released');
  assert.deepEqual(events, ['unregistering:d', 'released:d']);
  assert.equal(dev.violations.length, 0, dev.violations.join('; '));
});

test('back-off: request(n) waits requestBackoffMs(n) between nudges', async () => {
  const waits: number[] = [];
  let wake: (() => void) | undefined;
  const core = new VfioCore({
    requestBackoffMs: (n) => 10 * (n + 1),
    wait: (ms, drained) => {
      waits.push(ms);
      return new Promise<void>((r) => {
        wake = r;
        void drained.then(r);
      });
    },
  });
  const dev = new TestDevice({ name: 'd', core });
  dev.register();
  const f = dev.openFile();
  const done = dev.unregister();
  assert.deepEqual(waits, [10]);
  wake!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(dev.requests, [0, 1]);
  assert.deepEqual(waits, [10, 20]);
  await f.close();
  await done;
  assert.deepEqual(dev.requests, [0, 1], 'no nudge after the last close');
});

test('an unbound open file also holds the registration', async () => {
  const core = fastCore();
  const dev = new TestDevice({ name: 'd', core });
  dev.register();
  const f = dev.openFile();
  let done = false;
  const p = dev.unregister().then(() => (done = true));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(done, false);
  await f.close();
  await p;
  assert.equal(dev.opens, 0);
  assert.equal(dev.closes, 0, 'close_device only for a device that was opened');
});

test('a throwing request op does not stop unregister', async () => {
  const core = fastCore();
  class Grumpy extends TestDevice {
    override request(count: number): void {
      super.request(count);
      throw new Error('nope');
    }
  }
  const dev = new Grumpy({ name: 'g', core });
  dev.register();
  const f = dev.openFile();
  const warnings: string[] = [];
  const onWarn = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarn);
  const p = dev.unregister();
  await f.close();
  await p;
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarn);
  assert.equal(dev.releases, 1);
  assert.ok(warnings.some((w) => w.includes('request op threw')));
});

test('name can be reused once the old device is released', async () => {
  const core = fastCore();
  const a = new TestDevice({ name: 'same', core });
  a.register();
  const f = a.openFile();
  const p = a.unregister();
  assert.throws(
    () => new TestDevice({ name: 'same', core }).register(),
    (e: unknown) => e instanceof VfioError && e.code === 'EEXIST',
  );
  await f.close();
  await p;
  const b = new TestDevice({ name: 'same', core });
  b.register();
  assert.equal(core.device('same'), b);
});

test("an 'unregistering' observer calling unregister() gets the same promise", async () => {
  const core = fastCore();
  const dev = new TestDevice({ name: 'o', core });
  dev.register();
  let fromListener: Promise<void> | undefined;
  core.on('unregistering', (d) => {
    fromListener = d.unregister();
  });
  const p = dev.unregister();
  assert.equal(fromListener, p);
  await p;
  assert.equal(dev.releases, 1);
});

test('a throwing observer cannot leave a transition half-done', async () => {
  const core = fastCore();
  core.on('registered', () => {
    throw new Error('observer bug');
  });
  const warnings: string[] = [];
  const onWarn = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarn);
  const dev = new TestDevice({ name: 't', core });
  dev.register(); // does not throw: the device is registered, whatever the observer did
  assert.equal(dev.state, 'registered');
  assert.equal(core.device('t'), dev);
  await dev.unregister();
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarn);
  assert.ok(warnings.some((w) => w.includes("'registered' listener threw")));
});
