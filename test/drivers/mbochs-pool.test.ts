import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { DEFAULT_POOL_BYTES, MIB, MemoryPool } from '../../src/drivers/mbochs/memory-pool.js';

const code = (c: string) => (e: unknown) => e instanceof VfioError && e.code === c;

test('pool: 256 MiB by default; shares counted by what is left', () => {
  const pool = new MemoryPool();
  assert.equal(pool.totalBytes, DEFAULT_POOL_BYTES);
  assert.equal(DEFAULT_POOL_BYTES, 256 * MIB);
  assert.deepEqual([pool.available(4 * MIB), pool.available(16 * MIB), pool.available(64 * MIB)], [64, 16, 4]);
  pool.take(64 * MIB);
  pool.take(16 * MIB);
  assert.equal(pool.usedBytes, 80 * MIB);
  assert.deepEqual([pool.available(4 * MIB), pool.available(16 * MIB), pool.available(64 * MIB)], [44, 11, 2]);
});

test('pool: ENOSPC when exhausted, and nothing is taken then', () => {
  const pool = new MemoryPool(100 * MIB);
  pool.take(64 * MIB);
  assert.throws(() => pool.take(64 * MIB), code('ENOSPC'));
  assert.equal(pool.freeBytes, 36 * MIB);
  pool.take(16 * MIB);
  pool.take(16 * MIB);
  assert.throws(() => pool.take(16 * MIB), code('ENOSPC'));
  pool.take(4 * MIB);
  assert.equal(pool.freeBytes, 0);
  assert.equal(pool.available(4 * MIB), 0);
  pool.give(64 * MIB);
  assert.equal(pool.available(64 * MIB), 1);
});

test('pool: giving back more than was taken is a bug', () => {
  const pool = new MemoryPool(16 * MIB);
  pool.take(4 * MIB);
  pool.give(4 * MIB);
  assert.throws(() => pool.give(4 * MIB), /overflow/);
  assert.throws(() => pool.take(0), code('EINVAL'));
  assert.throws(() => new MemoryPool(-1), code('EINVAL'));
});
