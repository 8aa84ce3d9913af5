/**
 * Bad input, run as a user would: every mistake is one `uvfio: …` line on
 * stderr, exit status 1, nothing on stdout, and nothing written.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DefinitionStore } from '../../src/daemon/store.js';
import Database from 'better-sqlite3';
import { fails, ok, sandbox, uvfio, type Sandbox } from './harness.js';

const U1 = '0b6d6e3c-1b4b-45ef-ad62-de05be9171df';
const U2 = '9a0c3b2e-4f1d-4c8a-b7e6-5d4c3b2a1f00';
let sb: Sandbox;
before(() => {
  sb = sandbox();
});
after(() => sb.remove());

describe('uvfio command line: bad input', () => {
  it('malformed UUID', async () => {
    assert.match(await fails(sb, ['start', '-u', 'not-a-uuid']), /^uvfio: --uuid: "not-a-uuid" is not a UUID/);
    assert.match(await fails(sb, ['list', '--uuid=0b6d6e3c1b4b45efad62de05be9171df']), /is not a UUID/);
  });

  it('unknown command, unknown option, missing value, stray argument', async () => {
    assert.match(await fails(sb, ['frobnicate']), /^uvfio: unknown command "frobnicate" \(commands: daemon, types, list/);
    assert.match(await fails(sb, ['list', '--frob']), /^uvfio: list: unknown option --frob \(see "uvfio list --help"\)$/);
    assert.match(await fails(sb, ['start', '-u']), /^uvfio: start: -u.* needs a value/);
    assert.match(await fails(sb, ['stop', U1]), /^uvfio: stop: unexpected argument/);
    assert.match(await fails(sb, ['list', '--json', '--dumpjson']), /cannot be combined/);
    assert.match(await fails(sb, ['modify', '-u', U1, '--delattr', '--index', 'two']), /--index: "two" is not a non-negative integer/);
    assert.match(await fails(sb, ['modify', '-u', U1, '--live', '--jsonfile', 'x']), /--live is not supported/);
    assert.match(await fails(sb, ['stop']), /^uvfio: stop needs --uuid$/);
  });

  it('a daemon that is not running', async () => {
    for (const args of [['list'], ['types'], ['start', '-p', 'mtty', '-t', 'mtty-1'], ['stop', '-u', U1]]) {
      assert.match(
        await fails(sb, args),
        /^uvfio: no uvfio daemon is running \(nothing listens on .*control\.sock\); start one with "uvfio daemon"$/,
      );
    }
  });

  it('invalid JSON and attrs of the wrong shape name the file and the field; nothing is written', async () => {
    const bad = join(sb.dir, 'bad.json');
    writeFileSync(bad, '{"mdev_type": "mtty-1", "start": "auto",');
    assert.match(await fails(sb, ['define', '-p', 'mtty', '--jsonfile', bad]), new RegExp(`^uvfio: ${bad}: invalid JSON: `));
    const shape = join(sb.dir, 'shape.json');
    writeFileSync(shape, JSON.stringify({ mdev_type: 'mtty-1', start: 'auto', attrs: [{ a: '1' }, { b: 2 }] }));
    assert.equal(
      await fails(sb, ['define', '-p', 'mtty', '--jsonfile', shape]),
      `uvfio: ${shape}: field "attrs[1]": the value of "b" must be a string, not 2`,
    );
    writeFileSync(shape, JSON.stringify({ mdev_type: 'mtty-1', start: 'on' }));
    assert.match(await fails(sb, ['start', '-p', 'mtty', '--jsonfile', shape]), /field "start" must be "auto" or "manual", not "on"/);
    assert.match(await fails(sb, ['define', '-p', 'mtty', '--jsonfile', join(sb.dir, 'missing.json')]), /cannot read .*missing\.json/);
    assert.equal(existsSync(sb.dbFile), false, 'no store was created');
  });

  it('editing or listing definitions with no store writes no store', async () => {
    assert.match(await fails(sb, ['undefine', '-u', U1]), /no definition of/);
    assert.match(await fails(sb, ['modify', '-u', U1, '--auto']), /no definition of/);
    assert.equal(await ok(sb, ['list', '--defined']), '');
    assert.equal(existsSync(sb.dbFile), false);
  });

  it('a corrupt store: one line naming the file, and the file is left as it was', async () => {
    const s = sandbox();
    try {
      mkdirSync(s.stateDir, { recursive: true });
      const junk = 'definitely not a database\n'.repeat(200);
      writeFileSync(s.dbFile, junk);
      const line = await fails(s, ['list', '--defined']);
      assert.ok(line.includes(s.dbFile) && /not a SQLite database/.test(line), line);
      assert.match(await fails(s, ['undefine', '-u', U1]), /not a SQLite database/);
      assert.equal(readFileSync(s.dbFile, 'utf8'), junk);
    } finally {
      s.remove();
    }
  });

  it('a hand-edited row: the others are listed, the bad one is named with its field, status 1', async () => {
    const s = sandbox();
    try {
      mkdirSync(s.stateDir, { recursive: true });
      const store = DefinitionStore.open(s.dbFile);
      store.insert({ uuid: U1, parent: 'mtty', mdevType: 'mtty-1', start: 'auto', attrs: [] });
      store.insert({ uuid: U2, parent: 'mtty', mdevType: 'mtty-2', start: 'manual', attrs: [] });
      store.close();
      const raw = new Database(s.dbFile);
      raw.prepare(`UPDATE definitions SET attrs = '{"a":"1"}' WHERE uuid = ?`).run(U2);
      raw.close();
      const r = await uvfio(s, ['list', '--defined']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`^UUID .*\\n${U1}  mtty    mtty-1  auto   no\\n$`));
      assert.equal(
        r.stderr,
        `uvfio: ${s.dbFile}: definition ${U2} on parent mtty: field "attrs" must be an array of {"name": "value"} objects, not {"a":"1"}\n`,
      );
    } finally {
      s.remove();
    }
  });

  it('--help and --version', async () => {
    assert.match(await ok(sb, ['--help']), /^Usage: uvfio COMMAND/);
    assert.match(await ok(sb, ['modify', '--help']), /--addattr NAME/);
    assert.match(await ok(sb, ['--version']), /^uvfio \d+\.\d+\.\d+\n$/);
    const r = await uvfio(sb, []);
    assert.equal(r.code, 1);
  });
});
