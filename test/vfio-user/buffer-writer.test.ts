import { test } from 'node:test';
import assert from 'node:assert/strict';
import { u16, u32, u64 } from '../../src/vfio-user/buffer-reader.js';
import { put16, put32, put64 } from '../../src/vfio-user/buffer-writer.js';

test('put16 and put32 store the low bits little-endian, as masks would', () => {
  const b = new Uint8Array(8);
  for (const v of [0, 1, 0xff, 0x100, 0xbeef, 0xffff, 0x1_0000, 0xdead_beef, 0xffff_ffff, 0x1_0000_0005, -1, -2]) {
    put16(b, 1, v);
    assert.equal(u16(b, 1), v & 0xffff, `put16 ${v}`);
    put32(b, 3, v);
    assert.equal(u32(b, 3), v >>> 0, `put32 ${v}`);
  }
  assert.equal(b[0], 0, 'nothing before the offsets was touched');
  assert.equal(b[7], 0, 'nothing after the four bytes was touched');
});

test('put64 writes numbers on both sides of 2^32 and bigints', () => {
  const b = new Uint8Array(16);
  const cases: Array<[number | bigint, bigint]> = [
    [0, 0n],
    [0xffff_ffff, 0xffff_ffffn],
    [0x1_0000_0000, 0x1_0000_0000n],
    [0x1_2345_6789, 0x1_2345_6789n],
    [Number.MAX_SAFE_INTEGER, BigInt(Number.MAX_SAFE_INTEGER)],
    [0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
    [-1n, 0xffff_ffff_ffff_ffffn],
  ];
  for (const [v, want] of cases) {
    put64(b, 4, v);
    assert.equal(u64(b, 4), want, `put64 ${v}`);
  }
});
