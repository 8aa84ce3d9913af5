import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { MSIX_ENTRY, MsixTable } from '../../src/pci/msix-table.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function read32(t: MsixTable, off: number): number {
  const b = new Uint8Array(4);
  t.readTable(off, b);
  return new DataView(b.buffer).getUint32(0, true);
}

function pba(t: MsixTable): number[] {
  const b = new Uint8Array(t.pbaSize);
  t.readPba(0, b);
  return [...b];
}

test('sizes and power-on state: every vector masked, nothing pending', () => {
  const t = new MsixTable(65);
  assert.equal(t.tableSize, 65 * 16);
  assert.equal(t.pbaSize, 16, 'PBA in whole qwords');
  for (let v = 0; v < 65; v++) {
    assert.equal(read32(t, v * 16 + MSIX_ENTRY.VECTOR_CTRL), 1);
    assert.equal(t.isPending(v), false);
  }
  assert.throws(() => new MsixTable(0), EINVAL);
  assert.throws(() => new MsixTable(2049), EINVAL);
});

test('entries: address low bits and reserved control bits are read-only', () => {
  const t = new MsixTable(2);
  t.writeTable(16, le32(0xfee00003));
  t.writeTable(20, le32(0x00000001));
  t.writeTable(24, le32(0xdeadbeef));
  t.writeTable(28, le32(0xfffffffe));
  assert.equal(read32(t, 16), 0xfee00000);
  assert.equal(read32(t, 28), 0, 'mask bit cleared, reserved bits stay 0');
  assert.deepEqual(t.entry(1), { address: 0x1fee00000n, data: 0xdeadbeef, masked: false });
  // One 8-byte write across two dwords, and byte writes.
  t.writeTable(0, new Uint8Array([0x0c, 0x10, 0xe0, 0xfe, 0, 0, 0, 0]));
  t.writeTable(8, new Uint8Array([0x21]));
  assert.deepEqual(t.entry(0), { address: 0xfee0100cn, data: 0x21, masked: true });
});

test('a masked vector pends in the PBA and is sent when its mask bit clears', () => {
  const t = new MsixTable(3);
  const sent: number[] = [];
  t.onDeliver = (v) => sent.push(v);
  assert.equal(t.fire(2), false);
  assert.deepEqual(pba(t), [0b100, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(sent, []);
  t.writeTable(2 * 16 + 12, le32(0));
  assert.deepEqual(sent, [2]);
  assert.equal(t.isPending(2), false);
  assert.equal(t.fire(2), true);
  assert.deepEqual(sent, [2, 2]);
  // Unmasking a vector with nothing pending sends nothing.
  t.writeTable(16 + 12, le32(0));
  assert.deepEqual(sent, [2, 2]);
  // Writing the mask bit again (already clear) does not resend.
  t.writeTable(2 * 16 + 12, le32(0));
  assert.deepEqual(sent, [2, 2]);
});

test('function mask holds every vector; clearing it sends what is pending and unmasked', () => {
  const t = new MsixTable(4);
  const sent: number[] = [];
  t.onDeliver = (v) => sent.push(v);
  t.setVectorMasked(0, false);
  t.setVectorMasked(1, false);
  t.functionMasked = true;
  t.fire(0);
  t.fire(1);
  t.fire(3);
  assert.deepEqual(sent, []);
  assert.deepEqual(pba(t), [0b1011, 0, 0, 0, 0, 0, 0, 0]);
  t.functionMasked = false;
  assert.deepEqual(sent, [0, 1], 'vector 3 still masked by its own bit');
  assert.equal(t.isPending(3), true);
  t.setVectorMasked(3, false);
  assert.deepEqual(sent, [0, 1, 3]);
});

test('PBA is read-only; accesses outside table or PBA are EINVAL', () => {
  const t = new MsixTable(2);
  t.fire(0);
  t.writePba(0, new Uint8Array(8));
  assert.equal(t.isPending(0), true);
  assert.throws(() => t.readTable(30, new Uint8Array(4)), EINVAL);
  assert.throws(() => t.writeTable(-1, new Uint8Array(1)), EINVAL);
  assert.throws(() => t.readPba(8, new Uint8Array(1)), EINVAL);
  assert.throws(() => t.writePba(4, new Uint8Array(8)), EINVAL);
  assert.throws(() => t.fire(2), EINVAL);
  assert.throws(() => t.entry(-1), EINVAL);
});

test('reset masks everything again and forgets pending messages', () => {
  const t = new MsixTable(2);
  t.setVectorMasked(0, false);
  t.writeTable(0, le32(0xfee00000));
  t.fire(1);
  t.reset();
  assert.deepEqual(t.entry(0), { address: 0n, data: 0, masked: true });
  assert.equal(t.isPending(1), false);
});
