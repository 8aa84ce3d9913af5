import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { buildEdid, isValidEdid, preferredTiming } from '../../src/drivers/display/edid.js';
import { EDID_BLOB_MAX, EDID_BLOB_OFFSET, EDID_REG, EdidRegion, LINK_STATE } from '../../src/drivers/mbochs/edid-region.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function reg(r: EdidRegion, offset: number): number {
  const b = new Uint8Array(4);
  r.read(offset, b);
  return new DataView(b.buffer).getUint32(0, true);
}

function setReg(r: EdidRegion, offset: number, v: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  r.write(offset, b);
}

function guest(r: EdidRegion, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  r.readGuestWindow(offset, b);
  return b;
}

test('edid region: registers as struct vfio_region_gfx_edid, link up with a generated EDID', () => {
  const r = new EdidRegion({ maxWidth: 800, maxHeight: 600, preferred: { width: 800, height: 600 } });
  assert.equal(reg(r, EDID_REG.EDID_OFFSET), EDID_BLOB_OFFSET);
  assert.equal(reg(r, EDID_REG.EDID_MAX_SIZE), EDID_BLOB_MAX);
  assert.equal(reg(r, EDID_REG.EDID_SIZE), 128);
  assert.equal(reg(r, EDID_REG.MAX_XRES), 800);
  assert.equal(reg(r, EDID_REG.MAX_YRES), 600);
  assert.equal(reg(r, EDID_REG.LINK_STATE), LINK_STATE.UP);
  const blob = new Uint8Array(128);
  r.read(EDID_BLOB_OFFSET, blob);
  assert.ok(isValidEdid(blob));
  assert.deepEqual(guest(r, 0, 128), blob);
  assert.equal(preferredTiming(guest(r, 0, 128)).width, 800);
});

test('edid region: read-only registers ignore writes; only aligned dwords count', () => {
  const r = new EdidRegion({ maxWidth: 0, maxHeight: 0 });
  for (const off of [EDID_REG.EDID_OFFSET, EDID_REG.EDID_MAX_SIZE, EDID_REG.MAX_XRES, EDID_REG.MAX_YRES]) {
    const before = reg(r, off);
    setReg(r, off, 0x1234);
    assert.equal(reg(r, off), before);
  }
  r.write(EDID_REG.LINK_STATE, Uint8Array.of(LINK_STATE.DOWN));
  assert.equal(reg(r, EDID_REG.LINK_STATE), LINK_STATE.UP, 'a byte write is ignored');
  const two = new Uint8Array(2).fill(0xaa);
  r.read(EDID_REG.EDID_SIZE, two);
  assert.deepEqual([...two], [0, 0], 'a partial read gives zeros');
  setReg(r, EDID_REG.LINK_STATE, 7);
  assert.equal(reg(r, EDID_REG.LINK_STATE), LINK_STATE.UP, 'no such link state');
});

test('edid region: the update protocol (link down, blob and size, link up) is what the guest sees', () => {
  const r = new EdidRegion({ maxWidth: 0, maxHeight: 0 });
  setReg(r, EDID_REG.LINK_STATE, LINK_STATE.DOWN);
  assert.ok(
    guest(r, 0, 128).every((b) => b === 0),
    'nothing while unplugged',
  );
  const next = buildEdid({ width: 1280, height: 800 });
  r.write(EDID_BLOB_OFFSET, next);
  setReg(r, EDID_REG.EDID_SIZE, next.length);
  setReg(r, EDID_REG.LINK_STATE, LINK_STATE.UP);
  assert.deepEqual(guest(r, 0, 128), next);
  assert.equal(preferredTiming(r.edid).width, 1280);
  // past edid_size reads zero
  assert.ok(guest(r, 128, 16).every((b) => b === 0));
  setReg(r, EDID_REG.EDID_SIZE, 0x10000);
  assert.equal(reg(r, EDID_REG.EDID_SIZE), EDID_BLOB_MAX, 'clamped to the blob');
});

test('edid region: blob writes past edid_max_size are ignored; the region is 4 KiB', () => {
  const r = new EdidRegion({ maxWidth: 0, maxHeight: 0 });
  r.write(EDID_BLOB_OFFSET + EDID_BLOB_MAX - 2, Uint8Array.of(1, 2, 3, 4));
  const tail = new Uint8Array(2);
  r.read(EDID_BLOB_OFFSET + EDID_BLOB_MAX - 2, tail);
  assert.deepEqual([...tail], [0, 0]);
  const gap = new Uint8Array(8).fill(0xaa);
  r.read(0x100, gap);
  assert.ok(gap.every((b) => b === 0));
  assert.throws(() => r.read(4095, new Uint8Array(2)), EINVAL);
  assert.throws(() => r.write(-1, new Uint8Array(1)), EINVAL);
  assert.throws(() => new EdidRegion({ maxWidth: 0, maxHeight: 0, edid: new Uint8Array(2048) }), EINVAL);
});
