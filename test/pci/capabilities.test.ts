import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { Bars } from '../../src/pci/bar.js';
import { CapabilityList, PCI_CAP_ID, PCI_EXP, PCI_MSI_FLAGS, PCI_MSIX, PCI_PM } from '../../src/pci/capabilities.js';
import { ConfigSpace, PCI_HEADER, PCI_STATUS } from '../../src/pci/config-space.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function space(extended = false): ConfigSpace {
  return ConfigSpace.type0({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0xff0000, interruptPin: 1, extended });
}

/** Walks the list the way an OS does: [offset, id] pairs. */
function walk(cs: ConfigSpace): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let off = cs.read(PCI_HEADER.CAPABILITY_LIST, 1) & ~3;
  while (off && out.length < 48) {
    out.push([off, cs.read(off, 1)]);
    off = cs.read(off + 1, 1) & ~3;
  }
  return out;
}

test('capabilities are chained from the capabilities pointer, with the status bit set', () => {
  const cs = space(true);
  assert.equal(cs.read(PCI_HEADER.STATUS, 2) & PCI_STATUS.CAP_LIST, 0);
  const bars = new Bars(cs, [{ kind: 'mem32', size: 8192 }]);
  const caps = new CapabilityList(cs);
  const pm = caps.addPowerManagement();
  const msi = caps.addMsi({ vectors: 4 });
  const msix = caps.addMsix({ vectors: 8, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x1000 }, bars);
  const exp = caps.addExpress();
  const vndr = caps.addVendorSpecific(new Uint8Array([1, 2, 3]));
  assert.deepEqual(walk(cs), [
    [0x40, PCI_CAP_ID.PM],
    [0x48, PCI_CAP_ID.MSI],
    [0x60, PCI_CAP_ID.MSIX],
    [0x6c, PCI_CAP_ID.EXP],
    [0xa8, PCI_CAP_ID.VNDR],
  ]);
  assert.deepEqual([pm.offset, msi.offset, msix.offset, exp.offset, vndr], [0x40, 0x48, 0x60, 0x6c, 0xa8]);
  assert.ok(cs.read(PCI_HEADER.STATUS, 2) & PCI_STATUS.CAP_LIST);
  assert.equal(cs.read(vndr + 2, 4), 0x03020106, 'length 6, then the data');
  // IDs and next pointers are read-only.
  const before = new Uint8Array(256);
  cs.readBytes(0, before);
  for (const [off] of walk(cs)) cs.write(off, 2, 0xffff);
  cs.write(PCI_HEADER.CAPABILITY_LIST, 1, 0x80);
  const after = new Uint8Array(256);
  cs.readBytes(0, after);
  assert.deepEqual(after, before);
});

test('capability placement: explicit offsets, alignment, room', () => {
  const cs = space();
  const caps = new CapabilityList(cs);
  assert.equal(caps.addPowerManagement({}, 0x50).offset, 0x50);
  assert.throws(() => caps.addPowerManagement({}, 0x40), EINVAL, 'behind the previous one');
  assert.throws(() => caps.addMsi({ vectors: 1 }, 0x5a), EINVAL, 'not dword aligned');
  assert.throws(() => caps.addMsi({ vectors: 32 }, 0xf0), EINVAL, 'runs past 0x100');
  assert.throws(() => caps.addExpress(), EINVAL, 'PCIe needs 4 KiB config space');
  assert.throws(() => caps.addMsi({ vectors: 3 }), EINVAL);
  assert.equal(caps.addMsi({ vectors: 1, address64: false, perVectorMask: false }, 0xf4).length, 10);
  assert.deepEqual(walk(cs), [
    [0x50, PCI_CAP_ID.PM],
    [0xf4, PCI_CAP_ID.MSI],
  ]);
});

test('PM: D0 and D3hot accepted, unsupported states ignored, No_Soft_Reset set', () => {
  const cs = space();
  const pm = new CapabilityList(cs).addPowerManagement();
  const ctrl = pm.offset + PCI_PM.CTRL;
  assert.equal(cs.read(pm.offset + PCI_PM.PMC, 2), PCI_PM.PMC_VERSION_3);
  assert.equal(cs.read(ctrl, 2), PCI_PM.CTRL_NO_SOFT_RESET);
  const moves: Array<[number, number]> = [];
  pm.onPowerStateChange = (from, to) => moves.push([from, to]);
  cs.write(ctrl, 2, 3);
  assert.equal(pm.powerState, 3);
  assert.equal(cs.read(ctrl, 2), PCI_PM.CTRL_NO_SOFT_RESET | 3);
  cs.write(ctrl, 2, 1);
  assert.equal(pm.powerState, 3, 'D1 unsupported: write completes, nothing changes');
  assert.equal(cs.read(ctrl, 2) & 3, 3);
  cs.write(ctrl, 2, 0xffff);
  assert.equal(cs.read(ctrl, 2), PCI_PM.CTRL_NO_SOFT_RESET | 3, 'PME bits and data select read-only');
  cs.write(ctrl, 1, 0);
  assert.deepEqual(moves, [
    [0, 3],
    [3, 0],
  ]);
  const d1 = new CapabilityList(space()).addPowerManagement({ d1: true, d2: true });
  assert.equal(d1.powerState, 0);
});

test('MSI 64-bit with masking: control, address, data, mask bits', () => {
  const cs = space();
  const msi = new CapabilityList(cs).addMsi({ vectors: 4 });
  const o = msi.offset;
  assert.equal(msi.length, 0x18);
  assert.equal(cs.read(o + 2, 2), (2 << 1) | PCI_MSI_FLAGS.ADDR64 | PCI_MSI_FLAGS.MASKBIT);
  cs.write(o + 2, 2, 0xffff);
  assert.equal(cs.read(o + 2, 2), 0x01f5, 'enable + MME writable, the rest fixed');
  assert.equal(msi.enabled, true);
  assert.equal(msi.allocatedVectors, 4, 'MME 7 is clamped to what is implemented');
  cs.write(o + 2, 2, PCI_MSI_FLAGS.ENABLE | (1 << 4));
  assert.equal(msi.allocatedVectors, 2);
  cs.write(o + 4, 4, 0xfee0100f);
  assert.equal(cs.read(o + 4, 4), 0xfee0100c, 'address bits 1:0 hardwired to 0');
  cs.write(o + 8, 4, 0x1);
  cs.write(o + 0xc, 4, 0xffff4021);
  assert.equal(cs.read(o + 0xc, 4), 0x4021, 'data is 16 bits');
  assert.deepEqual(msi.message(1), { address: 0x1fee0100cn, data: 0x4021 });
  assert.deepEqual(msi.message(0), { address: 0x1fee0100cn, data: 0x4020 }, 'vector number in the granted low bits');
  cs.write(o + 0x10, 4, 0xffffffff);
  assert.equal(cs.read(o + 0x10, 4), 0xf, 'mask bits only for implemented vectors');
  cs.write(o + 0x14, 4, 0xffffffff);
  assert.equal(cs.read(o + 0x14, 4), 0, 'pending bits read-only');
  assert.equal(msi.isMasked(3), true);
  assert.throws(() => msi.isMasked(4), EINVAL);
});

test('MSI 32-bit without masking: data at +8, no mask register', () => {
  const cs = space();
  const msi = new CapabilityList(cs).addMsi({ vectors: 1, address64: false, perVectorMask: false });
  const o = msi.offset;
  assert.equal(cs.read(o + 2, 2), 0);
  cs.write(o + 4, 4, 0xfee00000);
  cs.write(o + 8, 2, 0x4041);
  assert.deepEqual(msi.message(0), { address: 0xfee00000n, data: 0x4041 });
  assert.equal(msi.isMasked(0), false);
  const sent: number[] = [];
  msi.onDeliver = (v) => sent.push(v);
  assert.equal(msi.fire(0), true);
  assert.deepEqual(sent, [0]);
});

test('MSI per-vector mask: a masked vector pends and is sent when unmasked', () => {
  const cs = space();
  const msi = new CapabilityList(cs).addMsi({ vectors: 2, address64: false });
  const sent: number[] = [];
  msi.onDeliver = (v) => sent.push(v);
  cs.write(msi.offset + 0xc, 4, 0b10);
  assert.equal(msi.fire(1), false);
  assert.equal(msi.fire(0), true);
  assert.equal(msi.isPending(1), true);
  assert.equal(cs.read(msi.offset + 0x10, 4), 0b10);
  assert.deepEqual(sent, [0]);
  cs.write(msi.offset + 0xc, 4, 0);
  assert.deepEqual(sent, [0, 1]);
  assert.equal(msi.isPending(1), false);
  msi.setEnabled(true, 2);
  assert.equal(msi.enabled, true);
  assert.equal(msi.allocatedVectors, 2);
  msi.reset();
  assert.equal(msi.enabled, false);
});

test('MSI-X capability: table size, BIR/offsets read-only, enable and function mask', () => {
  const cs = space();
  const bars = new Bars(cs, [undefined, { kind: 'mem32', size: 4096 }, { kind: 'mem32', size: 4096 }]);
  const msix = new CapabilityList(cs).addMsix({ vectors: 3, tableBar: 1, tableOffset: 0x800, pbaBar: 2, pbaOffset: 0x0 }, bars);
  const o = msix.offset;
  assert.equal(cs.read(o + PCI_MSIX.FLAGS, 2), 2);
  assert.equal(cs.read(o + PCI_MSIX.TABLE, 4), 0x801);
  assert.equal(cs.read(o + PCI_MSIX.PBA, 4), 0x2);
  cs.write(o, 4, 0xffffffff);
  cs.write(o + 4, 4, 0);
  cs.write(o + 8, 4, 0xffffffff);
  assert.equal(cs.read(o + PCI_MSIX.FLAGS, 2), 0xc002);
  assert.equal(cs.read(o + PCI_MSIX.TABLE, 4), 0x801);
  assert.equal(cs.read(o + PCI_MSIX.PBA, 4), 0x2);
  assert.equal(msix.enabled, true);
  assert.equal(msix.functionMasked, true);
  assert.equal(msix.table.functionMasked, true, 'mirrored into the table');
  assert.equal(msix.claims(1, 0x800, 4), 'table');
  assert.equal(msix.claims(1, 0x830, 4), null);
  assert.equal(msix.claims(2, 0, 8), 'pba');
  msix.setEnabled(true);
  assert.equal(msix.functionMasked, false, 'a host enabling MSI-X clears the function mask');
  msix.reset();
  assert.equal(cs.read(o + PCI_MSIX.FLAGS, 2), 2);
});

test('MSI-X placement is checked against the BARs', () => {
  const bars = (cs: ConfigSpace) =>
    new Bars(cs, [
      { kind: 'mem32', size: 4096 },
      { kind: 'io', size: 8 },
    ]);
  const cases = [
    { vectors: 0, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 2049, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 4, tableBar: 0, tableOffset: 4, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 4, tableBar: 6, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 4, tableBar: 1, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 4, tableBar: 2, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { vectors: 256, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0xf00 },
    { vectors: 4, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x38 },
    { vectors: 4, tableBar: 0, tableOffset: 0xff8, pbaBar: 0, pbaOffset: 0 },
  ];
  for (const c of cases) {
    const cs = space();
    assert.throws(() => new CapabilityList(cs).addMsix(c, bars(cs)), EINVAL, JSON.stringify(c));
  }
  const cs = space();
  assert.equal(new CapabilityList(cs).addMsix({ vectors: 4, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x40 }, bars(cs)).vectors, 4);
});

test('PCI Express v2 endpoint: fixed fields, RW control, RW1C status, FLR', () => {
  const cs = space(true);
  let flrs = 0;
  const exp = new CapabilityList(cs).addExpress({ onFlr: () => flrs++ });
  const o = exp.offset;
  assert.equal(cs.read(o + PCI_EXP.FLAGS, 2), 0x0002, 'version 2, endpoint');
  assert.equal(cs.read(o + PCI_EXP.DEVCAP, 4), PCI_EXP.DEVCAP_RBER | PCI_EXP.DEVCAP_FLR);
  assert.equal(cs.read(o + PCI_EXP.DEVCTL, 2), 0x2810, 'relaxed ordering, no snoop, 512-byte reads');
  cs.write(o + PCI_EXP.DEVCTL, 2, 0x7fff);
  assert.equal(cs.read(o + PCI_EXP.DEVCTL, 2), 0x78ff, 'ext tag, phantom, aux power hardwired to 0');
  cs.write(o + PCI_EXP.DEVCTL, 2, 0x8000 | 0x2810);
  assert.equal(flrs, 1);
  assert.equal(cs.read(o + PCI_EXP.DEVCTL, 2), 0x2810, 'Initiate FLR reads 0');
  cs.setBits(o + PCI_EXP.DEVSTA, 2, 0x3f, true);
  cs.write(o + PCI_EXP.DEVSTA, 2, 0x0005);
  assert.equal(cs.read(o + PCI_EXP.DEVSTA, 2), 0x3a, 'error bits RW1C, the rest read-only');
  assert.equal(cs.read(o + PCI_EXP.LNKCAP, 4), 0x11, '2.5 GT/s x1');
  assert.equal(cs.read(o + PCI_EXP.LNKSTA, 2), 0x11);
  cs.write(o + PCI_EXP.LNKCTL, 2, 0xffff);
  assert.equal(cs.read(o + PCI_EXP.LNKCTL, 2), 0x00c3);
  assert.equal(cs.read(o + PCI_EXP.LNKCAP2, 4), 0x2);
  cs.write(o + PCI_EXP.DEVCAP, 4, 0);
  assert.equal(cs.read(o + PCI_EXP.DEVCAP, 4), PCI_EXP.DEVCAP_RBER | PCI_EXP.DEVCAP_FLR);

  const rc = space(true);
  const rcExp = new CapabilityList(rc).addExpress({ type: 'rc-endpoint' });
  assert.equal(rc.read(rcExp.offset + PCI_EXP.FLAGS, 2), 0x0092);
  assert.equal(rc.read(rcExp.offset + PCI_EXP.LNKCAP, 4), 0, 'no link');
  rc.write(rcExp.offset + PCI_EXP.DEVCTL, 2, 0xffff);
  assert.equal(rc.read(rcExp.offset + PCI_EXP.DEVCTL, 2), 0x78ff, 'no FLR without onFlr');
  assert.equal(rc.read(0x100, 4), 0, 'no extended capabilities');
});
