import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { SharedPool } from '../../src/mdev/shared-pool.js';

const MIB = 1024 * 1024;
const code = (c: string) => (e: unknown) => e instanceof VfioError && e.code === c;
const memory = (size: number) => new SharedPool({ name: 'video memory', size, unit: (b) => `${b / MIB} MiB`, exhausted: 'ENOSPC' });

test('pool: shares counted by what is left', () => {
  const pool = memory(256 * MIB);
  assert.equal(pool.size, 256 * MIB);
  assert.deepEqual([pool.available(4 * MIB), pool.available(16 * MIB), pool.available(64 * MIB)], [64, 16, 4]);
  pool.take(64 * MIB, 'large');
  pool.take(16 * MIB, 'medium');
  assert.equal(pool.used, 80 * MIB);
  assert.deepEqual([pool.available(4 * MIB), pool.available(16 * MIB), pool.available(64 * MIB)], [44, 11, 2]);
});

test('pool: the errno of its kind when exhausted, saying what and how much; nothing is taken then', () => {
  const pool = memory(100 * MIB);
  const large = pool.take(64 * MIB, 'large');
  assert.throws(
    () => pool.take(64 * MIB, 'large'),
    (e: unknown) => code('ENOSPC')(e) && (e as Error).message === 'video memory: large needs 64 MiB, 36 MiB of 100 MiB left',
  );
  assert.equal(pool.free, 36 * MIB);
  pool.take(16 * MIB, 'medium');
  pool.take(16 * MIB, 'medium');
  assert.throws(() => pool.take(16 * MIB, 'medium'), code('ENOSPC'));
  pool.take(4 * MIB, 'small');
  assert.equal(pool.free, 0);
  assert.equal(pool.available(4 * MIB), 0);
  large.give();
  assert.equal(pool.available(64 * MIB), 1);
  const ports = new SharedPool({ name: 'ports', size: 1 });
  ports.take(1, 'one');
  assert.throws(() => ports.take(1, 'two'), code('EUSERS'), 'EUSERS unless told otherwise');
});

test('pool: a share gives back once, whatever calls it; sizes and shares must be whole numbers', () => {
  const pool = memory(16 * MIB);
  const share = pool.take(4 * MIB, 'small');
  share.give();
  share.give();
  assert.equal(pool.free, 16 * MIB, 'a second give() gives nothing');
  for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => pool.take(bad, 'x'), code('EINVAL'), String(bad));
  for (const bad of [-1, 1.5, Infinity]) assert.throws(() => new SharedPool({ name: 'x', size: bad }), code('EINVAL'), String(bad));
  assert.equal(new SharedPool({ name: 'x', size: 0 }).available(1), 0);
});
