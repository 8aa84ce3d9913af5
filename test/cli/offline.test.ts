/**
 * Definitions with no daemon running: the command line opens the store
 * itself, and processes racing on one database file lose nothing.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DefinitionStore } from '../../src/daemon/store.js';
import { fails, ok, okJson, sandbox, uvfio, type Sandbox } from './harness.js';

const U1 = '5cf14a12-a437-4c82-a13f-70e945782d7b';
const U2 = '783e6dbb-ea0e-411f-94e2-717eaad438bf';
let sb: Sandbox;

before(() => {
  sb = sandbox();
  mkdirSync(sb.stateDir, { recursive: true });
  // Written straight into the store: these tests must not depend on which parents are built in.
  const store = DefinitionStore.open(sb.dbFile);
  store.insert({ uuid: U1, parent: 'mtty', mdevType: 'mtty-1', start: 'manual', attrs: [] });
  store.insert({ uuid: U2, parent: 'matrix', mdevType: 'vfio_ap-passthrough', start: 'auto', attrs: [{ name: 'assign_adapter', value: '5' }] });
  store.close();
});
after(() => sb.remove());

describe('uvfio without a daemon', () => {
  it('lists definitions as a table, as uvfio JSON and as mdevctl JSON', async () => {
    assert.equal(
      await ok(sb, ['list', '--defined']),
      [
        'UUID                                  PARENT  TYPE                 START   RUNNING',
        `${U1}  mtty    mtty-1               manual  no`,
        `${U2}  matrix  vfio_ap-passthrough  auto    no`,
        '',
      ].join('\n'),
    );
    const rows = await okJson<Array<{ uuid: string; active: boolean; attrs: unknown }>>(sb, ['list', '-d', '-p', 'matrix']);
    assert.deepEqual(rows, [
      { uuid: U2, parent: 'matrix', mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: '5' }], active: false, defined: true },
    ]);
    assert.deepEqual(JSON.parse(await ok(sb, ['list', '-d', '--dumpjson'])), [
      {
        matrix: [{ [U2]: { mdev_type: 'vfio_ap-passthrough', start: 'auto', attrs: [{ assign_adapter: '5' }] } }],
        mtty: [{ [U1]: { mdev_type: 'mtty-1', start: 'manual', attrs: [] } }],
      },
    ]);
    assert.equal(await ok(sb, ['list', '-d', '-u', U1, '--dumpjson']), '{\n  "mdev_type": "mtty-1",\n  "start": "manual",\n  "attrs": []\n}\n');
  });

  it('concurrent modifies from separate processes: every change kept', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const runs = await Promise.all(names.map((n) => uvfio(sb, ['modify', '-u', U1, '--addattr', n, '--value', n])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const [dev] = await okJson<Array<{ attrs: Array<Record<string, string>> }>>(sb, ['list', '-d', '-u', U1]);
    assert.deepEqual(dev!.attrs.map((a) => Object.keys(a)[0]).sort(), names);
    await ok(sb, ['modify', '-u', U1, '--auto']);
    const again = await okJson<Array<{ start: string; attrs: unknown[] }>>(sb, ['list', '-d', '-u', U1]);
    assert.deepEqual([again[0]!.start, again[0]!.attrs.length], ['auto', 8]);
  });

  it('undefine by UUID; a second undefine is an error', async () => {
    assert.equal(await ok(sb, ['undefine', '-u', U2]), '');
    assert.match(await fails(sb, ['undefine', '-u', U2]), new RegExp(`^uvfio: no definition of ${U2}$`));
    assert.equal((await okJson<unknown[]>(sb, ['list', '-d'])).length, 1);
  });

  it('verbs that need running devices say the daemon is not running', async () => {
    assert.match(await fails(sb, ['start', '-u', U1]), /no uvfio daemon is running/);
  });
});
