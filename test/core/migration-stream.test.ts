/**
 * The shared device-stream format: a stream round-trips, and every kind of
 * bad stream is refused with its own errno: damage (EBADMSG), truncation
 * (ENODATA), another version (EPROTO), another kind or type (EINVAL).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError, type ErrnoName } from '../../src/base/errors.js';
import { FieldReader, FieldWriter, MigStreamWriter, readMigStream, type MigStreamExpectation } from '../../src/core/index.js';

const params = Uint8Array.of(2, 0, 0, 0);
const expect: MigStreamExpectation = { kind: 'mtty', major: 1, minor: 1, params, tags: [2, 3] };

function stream(header: Partial<{ kind: string; major: number; minor: number; params: Uint8Array }> = {}): Uint8Array {
  return new MigStreamWriter()
    .begin({ kind: 'mtty', major: 1, minor: 0, params, ...header })
    .record(
      2,
      new FieldWriter()
        .u32(7)
        .u64(2 ** 40)
        .take(),
    )
    .record(3, Uint8Array.of(9, 9))
    .end()
    .take();
}

const refused = (code: ErrnoName) => (e: unknown) => isVfioError(e, code);

describe('migration stream format', () => {
  it('round-trips records; fields read back exactly', () => {
    const records = readMigStream(stream(), expect);
    assert.deepEqual([...records.keys()], [2, 3]);
    const r = new FieldReader(records.get(2)!, 'test');
    assert.deepEqual([r.u32(), r.u64()], [7, 2 ** 40]);
    r.done();
  });

  it('a stream written in stages (PRE_COPY, then STOP_COPY) reads as one', () => {
    const w = new MigStreamWriter().begin({ kind: 'mtty', major: 1, minor: 0, params });
    const first = w.take();
    const rest = w.record(2, Uint8Array.of(1)).end().take();
    assert.equal(readMigStream(Uint8Array.from([...first, ...rest]), expect).size, 1);
  });

  it('every damaged byte is EBADMSG or, where a length grew past the end, ENODATA', () => {
    const good = stream();
    for (let i = 0; i < good.length; i++) {
      const bad = good.slice();
      bad[i]! ^= 0x40;
      assert.throws(
        () => readMigStream(bad, expect),
        (e: unknown) => isVfioError(e, 'EBADMSG') || isVfioError(e, 'ENODATA'),
        `byte ${i}`,
      );
    }
    const payload = good.slice();
    payload[payload.length - 20]! ^= 1; // inside a record's payload
    assert.throws(() => readMigStream(payload, expect), refused('EBADMSG'));
    assert.throws(() => readMigStream(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9), expect), refused('EBADMSG'));
  });

  it('every truncation is ENODATA', () => {
    const good = stream();
    for (let n = 0; n < good.length; n++) assert.throws(() => readMigStream(good.subarray(0, n), expect), refused('ENODATA'), `${n} bytes`);
  });

  it('another major, or a newer minor, is EPROTO; an older minor loads', () => {
    assert.throws(() => readMigStream(stream({ major: 2 }), expect), refused('EPROTO'));
    assert.throws(() => readMigStream(stream({ minor: 2 }), expect), refused('EPROTO'));
    assert.equal(readMigStream(stream({ minor: 1 }), expect).size, 2);
  });

  it('another kind or other parameters is EINVAL', () => {
    assert.throws(() => readMigStream(stream({ kind: 'mdpy' }), expect), refused('EINVAL'));
    assert.throws(() => readMigStream(stream({ params: Uint8Array.of(1, 0, 0, 0) }), expect), refused('EINVAL'));
  });

  it('unknown, repeated or trailing records are EBADMSG', () => {
    const w = () => new MigStreamWriter().begin({ kind: 'mtty', major: 1, minor: 0, params });
    assert.throws(() => readMigStream(w().record(4, new Uint8Array(1)).end().take(), expect), refused('EBADMSG'));
    assert.throws(() => readMigStream(w().record(2, new Uint8Array(1)).record(2, new Uint8Array(1)).end().take(), expect), refused('EBADMSG'));
    const trailing = Uint8Array.from([...stream(), 0]);
    assert.throws(() => readMigStream(trailing, expect), refused('EBADMSG'));
  });

  it('a record whose fields do not fill it exactly is EBADMSG', () => {
    const r = new FieldReader(Uint8Array.of(1, 2, 3), 'short');
    assert.throws(() => r.u32(), refused('EBADMSG'));
    const r2 = new FieldReader(Uint8Array.of(1, 2, 3), 'long');
    r2.u16();
    assert.throws(() => r2.done(), refused('EBADMSG'));
  });
});
