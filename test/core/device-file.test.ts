import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioCore, VfioError, type DeviceFile } from '../../src/core/index.js';
import { IommufdContext, MemoryBacking } from '../../src/iommufd/index.js';
import { isPromiseLike } from '../../src/core/maybe-async.js';
import { TestDevice } from '../support/test-device.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

function setup(name = 'd') {
  const core = new VfioCore({ requestBackoffMs: () => 1 });
  const dev = new TestDevice({ name, core });
  dev.register();
  return { core, dev, ctx: new IommufdContext() };
}

test('every op before bind fails with EINVAL; after bind they work', async () => {
  const { dev, ctx } = setup();
  const f = dev.openFile();
  assert.equal(f.state, 'open');
  const ops: Array<[string, (f: DeviceFile) => unknown]> = [
    ['getInfo', (f) => f.getInfo()],
    ['getRegionInfo', (f) => f.getRegionInfo(0)],
    ['getIrqInfo', (f) => f.getIrqInfo(0)],
    ['setIrqs', (f) => f.setIrqs({ index: 0, start: 0, count: 0, action: 'trigger', data: 'none' })],
    ['regionRead', (f) => f.regionRead(0, 0, new Uint8Array(1))],
    ['regionWrite', (f) => f.regionWrite(0, 0, new Uint8Array(1))],
    ['mmap', (f) => f.mmap(0)],
    ['reset', (f) => f.reset()],
    ['deviceFeature', (f) => f.deviceFeature({ feature: 0, op: 'probe', data: new Uint8Array(0) })],
    ['getPciHotResetInfo', (f) => f.getPciHotResetInfo()],
    ['pciHotReset', (f) => f.pciHotReset()],
  ];
  for (const [name, op] of ops) {
    assert.throws(() => op(f), isCode('EINVAL'), `${name} before bind`);
  }
  assert.equal(dev.opens, 0);
  await f.bindIommufd(ctx);
  assert.equal(f.state, 'bound');
  assert.equal(f.context, ctx);
  assert.deepEqual(await f.getInfo(), { flags: 3, numRegions: 1, numIrqs: 0 });
  await f.regionWrite(0, 4, Uint8Array.of(1, 2, 3));
  const out = new Uint8Array(3);
  await f.regionRead(0, 4, out);
  assert.deepEqual([...out], [1, 2, 3]);
  // Ops the driver does not implement report the driver's errno.
  assert.throws(() => f.getIrqInfo(0), isCode('EINVAL'));
  assert.throws(() => f.mmap(0), isCode('EINVAL'));
  assert.throws(() => f.deviceFeature({ feature: 1, op: 'get', data: new Uint8Array(8) }), isCode('ENOTTY'));
  await f.close();
  for (const [name, op] of ops) assert.throws(() => op(f), isCode('EINVAL'), `${name} after close`);
});

test('a second bind is EINVAL; binding a closed file or to a destroyed context is EINVAL', async () => {
  const { dev, ctx } = setup();
  const f = dev.openFile();
  const p = f.bindIommufd(ctx);
  await assert.rejects(f.bindIommufd(ctx), isCode('EINVAL'), 'bind while binding');
  await p;
  await assert.rejects(f.bindIommufd(ctx), isCode('EINVAL'), 'bind when bound');
  await assert.rejects(f.bindIommufd(new IommufdContext()), isCode('EINVAL'));
  await f.close();
  await assert.rejects(f.bindIommufd(ctx), isCode('EINVAL'), 'bind when closed');
  const g = dev.openFile();
  const dead = new IommufdContext();
  dead.destroy();
  await assert.rejects(g.bindIommufd(dead), isCode('EINVAL'));
  assert.equal(g.state, 'open', 'a failed bind leaves the file open');
  await g.bindIommufd(ctx);
  await g.close();
});

test('open_device runs on the first bind only, close_device on the last close only', async () => {
  const { dev, ctx } = setup();
  const files = [dev.openFile(), dev.openFile(), dev.openFile()];
  assert.equal(dev.opens, 0, 'opening a file is not opening the device');
  for (const f of files) await f.bindIommufd(ctx);
  assert.equal(dev.opens, 1);
  assert.equal(dev.openCount, 3);
  await files[0]!.close();
  await files[1]!.close();
  assert.equal(dev.closes, 0);
  await files[2]!.close();
  assert.equal(dev.closes, 1);
  assert.equal(dev.openCount, 0);
  // And again: a new first bind opens again.
  const f = dev.openFile();
  await f.bindIommufd(ctx);
  assert.equal(dev.opens, 2);
  await f.close();
  assert.equal(dev.closes, 2);
  assert.deepEqual(dev.violations, []);
});

test('close is idempotent, drops the DMA access, and closing an unbound file does not close the device', async () => {
  const { dev, ctx } = setup();
  const a = dev.openFile();
  const b = dev.openFile();
  await a.bindIommufd(ctx);
  const access = a.access!;
  assert.ok(access.attached);
  assert.equal(dev.dma, access);
  await b.close();
  assert.equal(dev.closes, 0);
  const c1 = a.close();
  const c2 = a.close();
  assert.equal(c1, c2);
  await c1;
  assert.equal(access.attached, false);
  assert.equal(dev.dma, null);
  assert.equal(dev.closes, 1);
  assert.throws(() => access.readSync(0, new Uint8Array(1)), isCode('ENODEV'));
});

test('a bind asked for after close() began is refused (EINVAL), and the file ends closed', async () => {
  const core = new VfioCore();
  let fail = 1;
  const dev = new TestDevice({ name: 'c', core, failOpen: () => fail-- > 0 });
  dev.register();
  const ctx = new IommufdContext();
  const f = dev.openFile();
  const failing = f.bindIommufd(ctx); // open_device will fail: the file stays 'open'
  const closed = f.close(); // waits for that bind first
  await assert.rejects(failing, isCode('EIO'));
  await assert.rejects(f.bindIommufd(ctx), isCode('EINVAL'), 'no new bind once close() began');
  await closed;
  assert.equal(f.state, 'closed');
  assert.deepEqual([dev.opens, dev.closes], [0, 0]);
  await dev.unregister();
});

test('close during a bind waits for the bind, then closes the device', async () => {
  const { dev, ctx } = setup();
  const f = dev.openFile();
  const bound = f.bindIommufd(ctx);
  const closed = f.close();
  await bound;
  await closed;
  assert.equal(f.state, 'closed');
  assert.equal(dev.opens, 1);
  assert.equal(dev.closes, 1);
});

test('a failing open_device leaves the device closed and fails that caller only', async () => {
  const core = new VfioCore();
  let fail = 1;
  const dev = new TestDevice({ name: 'f', core, failOpen: () => fail-- > 0 });
  dev.register();
  const ctx = new IommufdContext();
  const a = dev.openFile();
  const b = dev.openFile();
  const pa = a.bindIommufd(ctx);
  const pb = b.bindIommufd(ctx);
  await assert.rejects(pa, isCode('EIO'));
  await pb; // the next binder runs open_device afresh and succeeds
  assert.equal(a.state, 'open');
  assert.equal(b.state, 'bound');
  assert.equal(dev.opens, 1);
  assert.equal(dev.openCount, 1);
  await a.bindIommufd(ctx); // a retry works and does not reopen
  assert.equal(dev.opens, 1);
  assert.equal(dev.openCount, 2);
  await a.close();
  await b.close();
  assert.equal(dev.closes, 1);
  await dev.unregister();
});

test('a throwing close_device is reported, never blocks close or unregister', async () => {
  const core = new VfioCore();
  class BadClose extends TestDevice {
    override closeDevice(): void {
      throw new Error('boom');
    }
  }
  const dev = new BadClose({ name: 'b', core });
  dev.register();
  const f = dev.openFile();
  await f.bindIommufd(new IommufdContext());
  const warnings: string[] = [];
  const onWarn = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarn);
  await f.close();
  await dev.unregister();
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarn);
  assert.equal(dev.openCount, 0);
  assert.ok(warnings.some((w) => w.includes('close_device failed')));
});

test('dma_unmap reaches the driver before the memory goes away', async () => {
  const { dev, ctx } = setup();
  const seen: string[] = [];
  dev.dmaUnmap = (iova, len) => {
    seen.push(`unmap ${iova}+${len}`);
  };
  const f = dev.openFile();
  await f.bindIommufd(ctx);
  const mem = new Uint8Array(4096);
  ctx.ioas.map(0x1000, 4096, new MemoryBacking(mem, () => seen.push('released')));
  dev.dma!.writeSync(0x1000, Uint8Array.of(9));
  assert.equal(mem[0], 9);
  ctx.ioas.unmap(0x1000, 4096);
  assert.deepEqual(seen, ['unmap 4096+4096', 'released']);
  await f.close();
});

test('core.openFile opens by name, ENODEV for unknown names', async () => {
  const { core, dev } = setup('named');
  const f = core.openFile('named');
  assert.equal(f.device, dev);
  await f.close();
  assert.throws(() => core.openFile('nope'), isCode('ENODEV'));
});

test('a reset that answers with a thenable (not a native promise) holds the set until it settles', async () => {
  const core = new VfioCore({ requestBackoffMs: () => 1 });
  const ctx = new IommufdContext();
  let finish: (() => void) | undefined;
  class ThenableReset extends TestDevice {
    override reset(): void | Promise<void> {
      this.calls.push('reset begins');
      const settled = new Promise<void>((resolve) => (finish = resolve)).then(() => void this.calls.push('reset ends'));
      // What another library's promise looks like to the core: only a then().
      return { then: (ok: () => void, fail: (e: unknown) => void) => settled.then(ok, fail) } as unknown as Promise<void>;
    }
  }
  const dev = new ThenableReset({ name: 'thenable', core });
  dev.register();
  const f = dev.openFile();
  await f.bindIommufd(ctx);
  const reset = f.reset();
  assert.ok(isPromiseLike(reset), 'the reset is still running, so the op is pending');
  const read = f.regionRead(0, 0, new Uint8Array(1));
  await new Promise((r) => setImmediate(r));
  assert.equal(dev.calls.at(-1), 'reset begins', 'the read waits for the reset');
  finish!();
  await reset;
  await read;
  assert.deepEqual(dev.calls.slice(-3), ['reset begins', 'reset ends', 'read']);
  await f.close();
});
