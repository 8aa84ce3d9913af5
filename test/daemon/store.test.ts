import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DefinitionStore } from '../../src/daemon/store.js';
import { SCHEMA_VERSION } from '../../src/daemon/store-schema.js';
import type { MdevDefinition } from '../../src/daemon/definition.js';

const dir = mkdtempSync(join(tmpdir(), 'uvfio-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `s${n++}.db`);

const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const def = (uuid: string, parent = 'mtty', extra: Partial<MdevDefinition> = {}): MdevDefinition => ({
  uuid,
  parent,
  mdevType: 'mtty-1',
  start: 'manual',
  attrs: [],
  ...extra,
});

describe('DefinitionStore', () => {
  it('creates the schema and keeps definitions across reopen', () => {
    const file = fresh();
    const s = DefinitionStore.open(file);
    assert.equal(s.schemaVersion(), SCHEMA_VERSION);
    s.insert(
      def(U1, 'mtty', {
        start: 'auto',
        attrs: [
          { name: 'x', value: '1' },
          { name: 'x', value: '2' },
        ],
      }),
    );
    s.close();
    const again = DefinitionStore.open(file);
    assert.deepEqual(again.list().definitions, [
      def(U1, 'mtty', {
        start: 'auto',
        attrs: [
          { name: 'x', value: '1' },
          { name: 'x', value: '2' },
        ],
      }),
    ]);
    assert.equal(again.schemaVersion(), SCHEMA_VERSION);
    again.close();
  });

  it('keys definitions by (uuid, parent), as mdevctl does', () => {
    const s = DefinitionStore.open(fresh());
    s.insert(def(U1, 'p1'));
    s.insert(def(U1, 'p2'));
    assert.throws(() => s.insert(def(U1, 'p1')), { code: 'EEXIST' });
    assert.throws(() => s.get(U1), { code: 'EINVAL', message: /several parents/ });
    assert.equal(s.get(U1, 'p2').parent, 'p2');
    assert.throws(() => s.get(U2), { code: 'ENOENT' });
    assert.deepEqual(s.remove(U1, 'p1'), [{ uuid: U1, parent: 'p1' }]);
    assert.deepEqual(
      s.list().definitions.map((d) => d.parent),
      ['p2'],
    );
    s.insert(def(U1, 'p3'));
    assert.equal(s.remove(U1).length, 2, "without a parent, every parent's definition goes");
    assert.throws(() => s.remove(U1), { code: 'ENOENT' });
    s.close();
  });

  it('update is read-modify-write in one transaction; a throwing change writes nothing', () => {
    const s = DefinitionStore.open(fresh());
    s.insert(def(U1));
    const out = s.update(U1, undefined, (d) => ({ ...d, start: 'auto', uuid: U2, parent: 'other' }));
    assert.equal(out.start, 'auto');
    assert.equal(out.uuid, U1, 'uuid and parent cannot change');
    assert.throws(() =>
      s.update(U1, undefined, () => {
        throw new Error('no');
      }),
    );
    assert.equal(s.get(U1).start, 'auto');
    s.close();
  });

  it('reports a row edited into a wrong shape with file, device and field, and loads the others', () => {
    const file = fresh();
    const s = DefinitionStore.open(file);
    s.insert(def(U1));
    s.insert(def(U2));
    const raw = new Database(file);
    raw.prepare('UPDATE definitions SET attrs = ? WHERE uuid = ?').run('[{"a": 1}]', U2);
    raw.close();
    const listing = s.list();
    assert.deepEqual(
      listing.definitions.map((d) => d.uuid),
      [U1],
    );
    assert.equal(listing.problems.length, 1);
    const msg = listing.problems[0]!.message;
    assert.ok(msg.includes(file) && msg.includes(U2) && msg.includes('attrs[0]'), msg);
    assert.throws(
      () => s.get(U2),
      (e: Error) => e.message === msg,
    );
    const raw2 = new Database(file);
    raw2.prepare('UPDATE definitions SET attrs = ? WHERE uuid = ?').run('not json', U1);
    raw2.close();
    assert.match(s.list().problems[0]!.message, /field "attrs" is not valid JSON/);
    assert.equal(s.remove(U2).length, 1, 'a damaged row can still be undefined');
    s.close();
  });

  it('refuses a file that is not a database, names it, and leaves it untouched', () => {
    const file = fresh();
    const junk = 'this is not SQLite\n'.repeat(100);
    writeFileSync(file, junk);
    assert.throws(
      () => DefinitionStore.open(file),
      (e: NodeJS.ErrnoException) => {
        assert.equal(e.code, 'EIO');
        assert.ok(e.message.includes(file) && /not a SQLite database/.test(e.message), e.message);
        return true;
      },
    );
    assert.equal(readFileSync(file, 'utf8'), junk);
  });

  it('refuses a database written by a newer schema', () => {
    const file = fresh();
    DefinitionStore.open(file).close();
    const raw = new Database(file);
    raw.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(SCHEMA_VERSION + 1, 'later');
    raw.close();
    assert.throws(() => DefinitionStore.open(file), { code: 'EPROTO', message: /newer than this uvfio knows/ });
  });

  it('seeds defaults once, and only into an empty store', () => {
    const s = DefinitionStore.open(fresh());
    assert.equal(
      s.seedOnce(() => [def(U1)]),
      true,
    );
    s.remove(U1);
    assert.equal(
      s.seedOnce(() => [def(U1)]),
      false,
      'an undefined default does not come back',
    );
    assert.equal(s.list().definitions.length, 0);
    s.close();
    const t = DefinitionStore.open(fresh());
    t.insert(def(U2));
    assert.equal(
      t.seedOnce(() => [def(U1)]),
      false,
      'a store with definitions is configured already',
    );
    assert.deepEqual(
      t.list().definitions.map((d) => d.uuid),
      [U2],
    );
    t.close();
  });
});
