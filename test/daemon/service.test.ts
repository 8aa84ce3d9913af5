/**
 * mdevctl's semantics, in process: the service over a real store file and
 * a bus with a fake parent (the spawned-binary tests cover the wiring).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { VfioCore } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { Logger } from '../../src/daemon/log.js';
import { MdevService } from '../../src/daemon/service.js';
import { DefinitionStore } from '../../src/daemon/store.js';
import { fakeDriver } from './fake-parent.js';

const dir = mkdtempSync(join(tmpdir(), 'uvfio-service-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const U1 = 'aaaaaaaa-1111-4111-8111-111111111111';
const U2 = 'bbbbbbbb-2222-4222-8222-222222222222';
const U3 = 'cccccccc-3333-4333-8333-333333333333';
const U4 = 'dddddddd-4444-4444-8444-444444444444';
let n = 0;
let store: DefinitionStore;
let bus: MdevBus;
let svc: MdevService;

beforeEach(() => {
  store?.close();
  store = DefinitionStore.open(join(dir, `svc${n++}.db`));
  bus = new MdevBus({ core: new VfioCore() });
  bus.registerParent({ name: 'fake0', driver: fakeDriver() });
  bus.registerParent({ name: 'fake1', driver: fakeDriver() });
  // Sockets named, no client ever connected (the real server is tested through the command line).
  const server = {
    socketPath: (u: string) => `/run/x/${u}.sock`,
    clients: () => [],
    dropClient: () => Promise.resolve(false),
    watchRequests: () => ({ asked: () => false, close: () => {} }),
    trace: () => ({ events: 0, dropped: 0, close: () => {} }),
  };
  svc = new MdevService({ store, bus, server });
});
after(() => store?.close());

describe('MdevService', () => {
  it('types: every parent with live availability; unknown parent is ENODEV', async () => {
    const { types } = svc.types({});
    assert.deepEqual(
      types.map((t) => `${t.parent}/${t.type}:${t.availableInstances}`),
      ['fake0/fake-a:2', 'fake0/fake-b:2', 'fake1/fake-a:2', 'fake1/fake-b:2'],
    );
    await svc.start({ parent: 'fake0', type: 'fake-a' });
    assert.equal(svc.types({ parent: 'fake0' }).types[0]!.availableInstances, 1);
    assert.throws(() => svc.types({ parent: 'nope' }), { code: 'ENODEV', message: /no parent "nope" \(parents: fake0, fake1\)/ });
  });

  it('define: generated UUID, unknown parent/type refused, EEXIST on the same parent', () => {
    const r = svc.define({ parent: 'fake0', type: 'fake-a', auto: true });
    assert.equal(r.generated, true);
    assert.equal(r.device.start, 'auto');
    assert.throws(() => svc.define({ uuid: U1, parent: 'nope', type: 'fake-a' }), { code: 'ENODEV' });
    assert.throws(() => svc.define({ uuid: U1, parent: 'fake0', type: 'fake-z' }), { code: 'ENOENT', message: /types: fake-a, fake-b/ });
    assert.throws(() => svc.define({ uuid: U1, type: 'fake-a' }), { code: 'EINVAL', message: /no parent/ });
    assert.throws(() => svc.define({ uuid: 'xyz', parent: 'fake0', type: 'fake-a' }), { code: 'EINVAL', message: /not a UUID/ });
    svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a' });
    assert.throws(() => svc.define({ uuid: U1, parent: 'fake0', type: 'fake-b' }), { code: 'EEXIST' });
    svc.define({ uuid: U1, parent: 'fake1', type: 'fake-b' });
    assert.equal(store.list({ uuid: U1 }).definitions.length, 2);
    assert.equal(svc.list({}).devices.length, 0, 'nothing defined runs by itself');
  });

  it('define --jsonfile: needs a parent, excludes --type and --auto', () => {
    const config = { mdev_type: 'fake-b', start: 'auto' as const, attrs: [{ k: 'v' }] };
    assert.throws(() => svc.define({ uuid: U1, config }), { code: 'EINVAL', message: /--parent is needed/ });
    assert.throws(() => svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a', config }), { code: 'EINVAL', message: /--type/ });
    assert.throws(() => svc.define({ uuid: U1, parent: 'fake0', config: { ...config, start: 'later' } as never }), {
      code: 'EINVAL',
      message: /"start"/,
    });
    const { device } = svc.define({ uuid: U1, parent: 'fake0', config });
    assert.deepEqual([device.mdevType, device.start, device.attrs], ['fake-b', 'auto', [{ name: 'k', value: 'v' }]]);
  });

  it('start: transient, defined, and the errors between', async () => {
    await assert.rejects(svc.start({ uuid: U1 }), { code: 'EINVAL', message: /not defined, so it needs --parent and --type/ });
    const t = await svc.start({ uuid: U1, parent: 'fake0', type: 'fake-a' });
    assert.deepEqual([t.device.active, t.device.defined, t.device.socket], [true, false, `/run/x/${U1}.sock`]);
    await assert.rejects(svc.start({ uuid: U1, parent: 'fake0', type: 'fake-a' }), { code: 'EEXIST' });
    svc.define({ uuid: U2, parent: 'fake0', type: 'fake-b' });
    await assert.rejects(svc.start({ uuid: U2, type: 'fake-a' }), {
      code: 'EINVAL',
      message: /defined on parent fake0 with type fake-b, not fake-a/,
    });
    svc.define({ uuid: U2, parent: 'fake1', type: 'fake-b' });
    await assert.rejects(svc.start({ uuid: U2 }), { code: 'EINVAL', message: /several parents/ });
    const d = await svc.start({ uuid: U2, parent: 'fake1' });
    assert.deepEqual([d.device.parent, d.device.defined, d.generated], ['fake1', true, false]);
    const listed = svc.list({}).devices;
    assert.deepEqual(
      listed.map((x) => [x.uuid, x.defined]),
      [
        [U1, false],
        [U2, true],
      ],
    );
    assert.deepEqual(
      svc.list({ defined: true }).devices.map((x) => [x.parent, x.active]),
      [
        ['fake0', false],
        ['fake1', true],
      ],
    );
  });

  it('start refuses a repeated attribute and runs out of instances with EUSERS', async () => {
    svc.define({ uuid: U1, parent: 'fake0', config: { mdev_type: 'fake-a', start: 'manual', attrs: [{ a: '1' }, { a: '2' }] } });
    await assert.rejects(svc.start({ uuid: U1 }), { code: 'EINVAL', message: /given twice/ });
    await svc.start({ parent: 'fake0', type: 'fake-b' });
    await svc.start({ parent: 'fake0', type: 'fake-b' });
    await assert.rejects(svc.start({ parent: 'fake0', type: 'fake-b' }), { code: 'EUSERS' });
  });

  it('stop: removes a running device; its definition stays', async () => {
    svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a' });
    await svc.start({ uuid: U1 });
    const { device } = await svc.stop({ uuid: U1 });
    assert.deepEqual([device.active, device.socket], [false, undefined]);
    await assert.rejects(svc.stop({ uuid: U1 }), { code: 'ENODEV', message: /is not running/ });
    assert.equal(svc.list({ defined: true }).devices.length, 1);
  });

  it('define -u of a running transient device promotes it with its parent, type and attrs', async () => {
    await svc.start({ uuid: U1, parent: 'fake1', config: { mdev_type: 'fake-b', start: 'manual', attrs: [{ x: 'y' }] } });
    const { device } = svc.define({ uuid: U1 });
    assert.deepEqual([device.parent, device.mdevType, device.attrs, device.active], ['fake1', 'fake-b', [{ name: 'x', value: 'y' }], true]);
  });

  it('modify: start mode, type, attributes by index, --jsonfile; the running device is untouched', async () => {
    svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a' });
    await svc.start({ uuid: U1 });
    svc.modify({ uuid: U1, auto: true });
    svc.modify({ uuid: U1, addattr: 'a', value: '1' });
    svc.modify({ uuid: U1, addattr: 'b', value: '' });
    svc.modify({ uuid: U1, addattr: 'c', value: '3', index: 0 });
    let d = svc.modify({ uuid: U1, type: 'fake-b' }).device;
    assert.deepEqual([d.start, d.mdevType, d.attrs.map((a) => a.name), d.active], ['auto', 'fake-b', ['c', 'a', 'b'], true]);
    d = svc.modify({ uuid: U1, delattr: true, index: 1 }).device;
    assert.deepEqual(
      d.attrs.map((a) => a.name),
      ['c', 'b'],
    );
    d = svc.modify({ uuid: U1, delattr: true, manual: true }).device;
    assert.deepEqual([d.attrs.map((a) => a.name), d.start], [['c'], 'manual']);
    assert.equal(bus.device(U1)!.type.id, 'fake-a', 'the running device keeps its type');
    const shown = svc.list({ uuid: U1 }).devices[0]!;
    assert.deepEqual([shown.mdevType, shown.attrs, shown.start, shown.defined], ['fake-a', [], 'manual', true], 'list shows it as it runs');
    d = svc.modify({ uuid: U1, config: { mdev_type: 'fake-a', start: 'auto', attrs: [] } }).device;
    assert.deepEqual([d.mdevType, d.start, d.attrs], ['fake-a', 'auto', []]);
  });

  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /nothing to modify/],
    [{ auto: true, manual: true }, /mutually exclusive/],
    [{ addattr: 'a' }, /--addattr needs --value/],
    [{ value: 'v', auto: true }, /--value goes with --addattr/],
    [{ addattr: 'a', value: 'v', delattr: true }, /cannot be combined/],
    [{ auto: true, index: 0 }, /--index goes with/],
    [{ delattr: true }, /no attribute to delete/],
    [{ addattr: 'a', value: 'v', index: 1 }, /index 1 is out of range \(0 to 0\)/],
    [{ type: 'fake-z' }, /has no type "fake-z"/],
    [{ auto: true, config: { mdev_type: 'fake-a', start: 'auto' } }, /cannot be combined with --auto/],
  ];
  for (const [args, re] of refused) {
    it(`modify refuses ${JSON.stringify(args)} and writes nothing`, () => {
      svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a' });
      const before = store.get(U1);
      assert.throws(
        () => svc.modify({ uuid: U1, ...args }),
        (e: Error) => re.test(e.message),
      );
      assert.deepEqual(store.get(U1), before);
    });
  }

  it('modify and undefine of an unknown device are ENOENT; undefine leaves a running device alone', async () => {
    assert.throws(() => svc.modify({ uuid: U2, auto: true }), { code: 'ENOENT' });
    assert.throws(() => svc.undefine({ uuid: U2 }), { code: 'ENOENT' });
    svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a' });
    await svc.start({ uuid: U1 });
    assert.deepEqual(svc.undefine({ uuid: U1 }).removed, [{ uuid: U1, parent: 'fake0' }]);
    assert.equal(svc.list({}).devices[0]!.defined, false);
  });

  it('handle() checks the request shape', async () => {
    await assert.rejects(svc.handle('frobnicate', {}), { code: 'EINVAL', message: /unknown operation/ });
    await assert.rejects(svc.handle('stop', {}), { code: 'EINVAL', message: /"uuid" is required/ });
    await assert.rejects(svc.handle('list', { defined: 'yes' }), { code: 'EINVAL', message: /"defined" must be true or false/ });
    await assert.rejects(svc.handle('list', { bogus: 1 }), { code: 'EINVAL', message: /unknown argument "bogus"/ });
    for (const key of ['toString', 'constructor', '__proto__']) {
      const args = JSON.parse(`{"${key}": 1}`) as unknown;
      await assert.rejects(svc.handle('list', args), { code: 'EINVAL', message: new RegExp(`unknown argument "${key}"`) });
    }
    await assert.rejects(svc.handle('modify', { uuid: U1, index: -1, delattr: true }), { code: 'EINVAL', message: /non-negative integer/ });
    await assert.rejects(svc.handle('list', []), { code: 'EINVAL' });
  });

  it('autostart starts the sound auto definitions and logs the rest', async () => {
    const logged: Array<{ level: string; msg: string; uuid?: string }> = [];
    const logging = new MdevService({ store, bus, log: new Logger((line) => void logged.push(JSON.parse(line) as (typeof logged)[0])) });
    svc.define({ uuid: U1, parent: 'fake0', type: 'fake-a', auto: true });
    svc.define({ uuid: U2, parent: 'fake0', type: 'fake-a' });
    // Auto, but for a parent this bus does not have: its start fails.
    store.insert({ uuid: U3, parent: 'gone', mdevType: 'fake-a', start: 'auto', attrs: [] });
    // Auto, but damaged by hand: it is not even read.
    store.insert({ uuid: U4, parent: 'fake1', mdevType: 'fake-a', start: 'auto', attrs: [] });
    const raw = new Database(store.file);
    raw.prepare(`UPDATE definitions SET attrs = 'nonsense' WHERE uuid = ?`).run(U4);
    raw.close();
    const started = await logging.autostart();
    assert.deepEqual(
      started.map((m) => m.uuid),
      [U1],
    );
    assert.deepEqual(
      bus.devices().map((m) => m.uuid),
      [U1],
    );
    const errors = logged.filter((l) => l.level === 'error');
    assert.deepEqual(errors.map((l) => l.msg).sort(), ['auto-start failed', 'definition skipped']);
    assert.equal(errors.find((l) => l.msg === 'auto-start failed')!.uuid, U3);
  });
});
