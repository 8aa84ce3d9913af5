/**
 * The command line against one running daemon, as an operator uses it:
 * the first start, types, start/stop/list, define → restart → auto-start,
 * modify, mdevctl's JSON shapes, errors through the daemon, and many
 * commands at once.
 */
import { strict as assert } from 'node:assert';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinParents } from '../../src/daemon/parents.js';
import { Daemon, fails, ok, okJson, sandbox, uvfio, type Sandbox } from './harness.js';

// Until the mtty driver is built in, there is nothing to run these against.
const pending = builtinParents().some((p) => p.name === 'mtty') ? false : 'the mtty parent is not built in yet';

interface Dev {
  uuid: string;
  parent: string;
  mdev_type: string;
  start: 'auto' | 'manual';
  attrs: Array<Record<string, string>>;
  active: boolean;
  defined: boolean;
  socket?: string;
}
interface TypeRow {
  parent: string;
  mdev_type: string;
  available_instances: number;
}

const U1 = '6eba5b41-176e-40db-b93e-7f18e04e0b93';
const U2 = '83c32df7-d52e-4ec1-9668-1f3c7e4df107';
const U3 = 'b0a3989f-8138-4d49-b63a-59db28ec8b48';

let sb: Sandbox;
let daemon: Daemon;

before(async () => {
  if (pending) return;
  sb = sandbox();
  daemon = await Daemon.start(sb);
});
after(() => {
  daemon?.kill();
  sb?.remove();
});

async function restart(): Promise<void> {
  assert.equal(await daemon.stop('SIGTERM'), 0);
  daemon = await Daemon.start(sb);
}
const running = () => okJson<Dev[]>(sb, ['list']);
const definitions = () => okJson<Dev[]>(sb, ['list', '--defined']);
const mttyAvailable = async (type: string) =>
  (await okJson<TypeRow[]>(sb, ['types', '-p', 'mtty'])).find((t) => t.mdev_type === type)!.available_instances;

describe('uvfio against a running daemon', { skip: pending }, () => {
  it('first start: one auto-started mtty-1, its socket and the exact QEMU option printed', async () => {
    const defs = (await definitions()).filter((d) => d.parent === 'mtty');
    assert.equal(defs.length, 1);
    assert.deepEqual([defs[0]!.mdev_type, defs[0]!.start, defs[0]!.active], ['mtty-1', 'auto', true]);
    const [dev] = (await running()).filter((d) => d.parent === 'mtty');
    const socket = join(sb.runtimeDir, 'devices', `${dev!.uuid}.sock`);
    assert.equal(dev!.socket, socket);
    assert.ok(statSync(socket).isSocket(), 'the device socket exists');
    assert.ok(daemon.stdout.includes(`-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"${socket}"}}'`), daemon.stdout);
  });

  it('types: the mtty parent with mtty-1 and mtty-2, as a table and as mdevctl JSON', async () => {
    const rows = await okJson<TypeRow[]>(sb, ['types']);
    assert.deepEqual(
      rows.filter((t) => t.parent === 'mtty').map((t) => t.mdev_type),
      ['mtty-1', 'mtty-2'],
    );
    const text = await ok(sb, ['types']);
    assert.match(text, /^PARENT +TYPE +AVAILABLE +DEVICE API +NAME +DESCRIPTION\n/);
    assert.match(text, /\nmtty +mtty-1 +\d+ +vfio-pci /);
    const dump = JSON.parse(await ok(sb, ['types', '-p', 'mtty', '--dumpjson'])) as Array<
      Record<string, Array<Record<string, { available_instances: number; device_api: string }>>>
    >;
    assert.deepEqual(Object.keys(dump[0]!), ['mtty']);
    assert.deepEqual(
      dump[0]!.mtty!.map((t) => Object.keys(t)[0]),
      ['mtty-1', 'mtty-2'],
    );
    assert.equal(dump[0]!.mtty![0]!['mtty-1']!.device_api, 'vfio-pci');
    assert.match(await fails(sb, ['types', '-p', 'nope']), /^uvfio: no parent "nope" \(parents: .*mtty.*\)$/);
  });

  it('transient start, list, stop; the instance count follows', async () => {
    const before = await mttyAvailable('mtty-2');
    assert.equal(await ok(sb, ['start', '-u', U1, '-p', 'mtty', '-t', 'mtty-2']), '', 'nothing printed when the UUID was given');
    assert.equal(await mttyAvailable('mtty-2'), before - 1);
    const dev = (await running()).find((d) => d.uuid === U1)!;
    assert.deepEqual([dev.mdev_type, dev.defined, dev.start], ['mtty-2', false, 'manual']);
    assert.ok(existsSync(dev.socket!));
    const table = await ok(sb, ['list']);
    assert.match(table, new RegExp(`\\n${U1}  mtty +mtty-2 +manual  no +${dev.socket}\\n`));
    assert.match(await ok(sb, ['list', '-v', '-u', U1]), /QEMU: -device '\{"driver":"vfio-user-pci"/);
    assert.match(await fails(sb, ['start', '-u', U1, '-p', 'mtty', '-t', 'mtty-2']), /^uvfio: mediated device .* exists$/);
    assert.equal(await ok(sb, ['stop', '-u', U1]), '');
    assert.equal(existsSync(dev.socket!), false, 'the socket goes with the device');
    assert.equal(await mttyAvailable('mtty-2'), before);
    assert.match(await fails(sb, ['stop', '-u', U1]), new RegExp(`^uvfio: ${U1} is not running$`));
    const generated = (await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1'])).trim();
    assert.match(generated, /^[0-9a-f-]{36}$/, 'a generated UUID is printed, as mdevctl does');
    await ok(sb, ['stop', '-u', generated]);
  });

  it('define → restart → the auto device runs again with the same UUID; a manual one does not', async () => {
    assert.equal(await ok(sb, ['define', '-u', U2, '-p', 'mtty', '-t', 'mtty-2', '--auto']), '');
    await ok(sb, ['define', '-u', U3, '-p', 'mtty', '-t', 'mtty-1']);
    assert.equal(
      (await running()).some((d) => d.uuid === U2),
      false,
      'define does not start',
    );
    await restart();
    const now = await running();
    const dev = now.find((d) => d.uuid === U2);
    assert.ok(dev, 'auto-started after the restart');
    assert.deepEqual([dev.mdev_type, dev.defined, dev.start], ['mtty-2', true, 'auto']);
    assert.ok(statSync(dev.socket!).isSocket());
    assert.equal(
      now.some((d) => d.uuid === U3),
      false,
    );
    const dumped = JSON.parse(await ok(sb, ['list', '-d', '-u', U3, '--dumpjson'])) as unknown;
    assert.deepEqual(dumped, { mdev_type: 'mtty-1', start: 'manual', attrs: [] }, 'one device: its configuration file');
    await ok(sb, ['start', '-u', U3]);
    assert.equal((await running()).find((d) => d.uuid === U3)!.defined, true);
    await ok(sb, ['stop', '-u', U3]);
  });

  it('modify through the daemon; the JSON file of one device defines another', async () => {
    await ok(sb, ['modify', '-u', U3, '--addattr', 'a', '--value', '1']);
    await ok(sb, ['modify', '-u', U3, '--addattr', 'b', '--value', '2']);
    await ok(sb, ['modify', '-u', U3, '--addattr', 'c', '--value', '0', '--index', '0']);
    await ok(sb, ['modify', '-u', U3, '--delattr', '-i', '2']);
    await ok(sb, ['modify', '-u', U3, '--auto']);
    assert.equal(
      await ok(sb, ['list', '-d', '-v', '-u', U3]),
      [
        'UUID                                  PARENT  TYPE    START  RUNNING',
        `${U3}  mtty    mtty-1  auto   no`,
        '  Attrs:',
        '    @{0}: {"c":"0"}',
        '    @{1}: {"a":"1"}',
        '',
      ].join('\n'),
    );
    const file = join(sb.dir, 'u3.json');
    writeFileSync(file, await ok(sb, ['list', '-d', '-u', U3, '--dumpjson']));
    const generated = (await ok(sb, ['define', '-p', 'mtty', '--jsonfile', file])).trim();
    const copy = (await definitions()).find((d) => d.uuid === generated)!;
    assert.deepEqual([copy.mdev_type, copy.start, copy.attrs], ['mtty-1', 'auto', [{ c: '0' }, { a: '1' }]]);
    await ok(sb, ['undefine', '-u', generated]);
    await ok(sb, ['modify', '-u', U3, '--manual', '--delattr']);
    await ok(sb, ['modify', '-u', U3, '--delattr']);
  });

  it("list --dumpjson of many devices has mdevctl's parent → [{uuid: config}] shape", async () => {
    const dump = JSON.parse(await ok(sb, ['list', '-d', '--dumpjson'])) as Array<Record<string, Array<Record<string, unknown>>>>;
    assert.equal(dump.length, 1);
    const mtty = dump[0]!.mtty!;
    assert.ok(
      mtty.some((e) => JSON.stringify(e) === JSON.stringify({ [U3]: { mdev_type: 'mtty-1', start: 'manual', attrs: [] } })),
      JSON.stringify(mtty),
    );
  });

  it('undefine leaves a running device running; after a restart it is gone', async () => {
    await ok(sb, ['undefine', '-u', U2]);
    const dev = (await running()).find((d) => d.uuid === U2)!;
    assert.deepEqual([dev.active, dev.defined], [true, false]);
    await restart();
    assert.equal(
      (await running()).some((d) => d.uuid === U2),
      false,
    );
  });

  it('errors through the daemon: unknown parent or type, start without a type, bad attrs', async () => {
    assert.match(await fails(sb, ['start', '-p', 'nope', '-t', 'mtty-1']), /^uvfio: no parent "nope"/);
    assert.match(await fails(sb, ['define', '-p', 'mtty', '-t', 'mtty-9']), /^uvfio: parent mtty has no type "mtty-9" \(types: mtty-1, mtty-2\)$/);
    assert.match(await fails(sb, ['start', '-p', 'mtty']), /needs --parent and --type/);
    assert.match(await fails(sb, ['modify', '-u', U1, '--auto']), /no definition of/);
    const file = join(sb.dir, 'dup.json');
    writeFileSync(file, JSON.stringify({ mdev_type: 'mtty-1', start: 'manual', attrs: [{ a: '1' }, { a: '2' }] }));
    assert.match(await fails(sb, ['start', '-p', 'mtty', '--jsonfile', file]), /attribute "a" is given twice/);
    const before = (await definitions()).length;
    assert.match(await fails(sb, ['define', '-u', U3, '-p', 'mtty', '-t', 'mtty-1']), /already defined/);
    assert.equal((await definitions()).length, before, 'nothing half-written');
  });

  it('many commands at once: no lost update, one winner per race', async () => {
    const defines = await Promise.all(Array.from({ length: 8 }, () => okJson<Dev>(sb, ['define', '-p', 'mtty', '-t', 'mtty-1'])));
    assert.equal(new Set(defines.map((d) => d.uuid)).size, 8);
    const defs = await definitions();
    for (const d of defines) assert.ok(defs.some((x) => x.uuid === d.uuid));

    await Promise.all(['p', 'q', 'r', 's', 't', 'u'].map((n) => ok(sb, ['modify', '-u', U3, '--addattr', n, '--value', n])));
    const attrs = (await definitions())
      .find((d) => d.uuid === U3)!
      .attrs.map((a) => Object.keys(a)[0])
      .sort();
    assert.deepEqual(attrs, ['p', 'q', 'r', 's', 't', 'u'], 'every concurrent modify kept');

    const target = defines[0]!.uuid;
    const starts = await Promise.all(Array.from({ length: 6 }, () => uvfio(sb, ['start', '-u', target])));
    assert.equal(starts.filter((r) => r.code === 0).length, 1, 'one start wins');
    for (const r of starts.filter((x) => x.code !== 0)) assert.match(r.stderr, /^uvfio: mediated device .* (exists|is being created)\n$/);
    const stops = await Promise.all(Array.from({ length: 6 }, () => uvfio(sb, ['stop', '-u', target])));
    assert.equal(stops.filter((r) => r.code === 0).length, 1, 'one stop wins');
    for (const r of stops.filter((x) => x.code !== 0)) assert.match(r.stderr, /^uvfio: .*(is not running|being removed|no such device)/);

    await Promise.all(defines.map((d) => ok(sb, ['undefine', '-u', d.uuid])));
    assert.equal(
      (await definitions()).some((x) => defines.some((d) => d.uuid === x.uuid)),
      false,
    );
  });

  it('SIGTERM removes every device and its socket, and exits 0', async () => {
    const sockets = (await running()).map((d) => d.socket!);
    assert.ok(sockets.length > 0);
    assert.equal(await daemon.stop('SIGTERM'), 0);
    for (const s of sockets) assert.equal(existsSync(s), false, `${s} removed`);
    assert.ok(daemon.logs.some((l) => l.msg === 'daemon stopped'));
  });
});
