import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { ConfigSpace, PCI_COMMAND, PCI_HEADER, PCI_STATUS, PCI_STATUS_ERROR_BITS } from '../../src/pci/config-space.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function header(extra: Partial<Parameters<typeof ConfigSpace.type0>[0]> = {}): ConfigSpace {
  return ConfigSpace.type0({
    vendorId: 0x4348,
    deviceId: 0x3253,
    subsystemVendorId: 0x4348,
    subsystemId: 0x3253,
    revision: 0x10,
    classCode: 0x070002,
    interruptPin: 1,
    ...extra,
  });
}

test('type-0 header carries the identity and ignores writes to it', () => {
  const cs = header();
  assert.equal(cs.size, 256);
  assert.equal(cs.read(0, 4), 0x32534348);
  assert.equal(cs.read(PCI_HEADER.REVISION_ID, 1), 0x10);
  assert.equal(cs.read(PCI_HEADER.REVISION_ID, 4), 0x07000210, 'revision + class code in one dword');
  assert.equal(cs.read(PCI_HEADER.HEADER_TYPE, 1), 0);
  assert.equal(cs.read(PCI_HEADER.SUBSYSTEM_VENDOR_ID, 4), 0x32534348);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_PIN, 1), 1);
  for (const off of [0, 8, 0x2c, 0x34]) cs.write(off, 4, 0xffffffff);
  assert.equal(cs.read(0, 4), 0x32534348);
  assert.equal(cs.read(8, 4), 0x07000210);
  assert.equal(cs.read(0x2c, 4), 0x32534348);
  assert.equal(cs.read(0x34, 1), 0);
  assert.equal(ConfigSpace.type0({ vendorId: 1, deviceId: 2, classCode: 0, multiFunction: true }).read(0x0e, 1), 0x80);
});

test('command register: only bus master and INTx disable are writable without BARs', () => {
  const cs = header();
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), 0, 'power-on command is 0');
  cs.write(PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), PCI_COMMAND.MASTER | PCI_COMMAND.INTX_DISABLE);
  cs.write(PCI_HEADER.COMMAND, 2, 0);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), 0);
  // Without an interrupt pin there is no INTx to disable.
  const nopin = header({ interruptPin: 0 });
  nopin.write(PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(nopin.read(PCI_HEADER.COMMAND, 2), PCI_COMMAND.MASTER);
});

test('status register: error bits are RW1C, capability list and interrupt status read-only', () => {
  const cs = header();
  cs.setBits(PCI_HEADER.STATUS, 2, PCI_STATUS_ERROR_BITS | PCI_STATUS.INTERRUPT | PCI_STATUS.CAP_LIST, true);
  const all = PCI_STATUS_ERROR_BITS | PCI_STATUS.INTERRUPT | PCI_STATUS.CAP_LIST;
  assert.equal(cs.read(PCI_HEADER.STATUS, 2), all);
  cs.write(PCI_HEADER.STATUS, 2, 0);
  assert.equal(cs.read(PCI_HEADER.STATUS, 2), all, 'writing 0 clears nothing');
  cs.write(PCI_HEADER.STATUS, 2, PCI_STATUS.REC_MASTER_ABORT | PCI_STATUS.INTERRUPT | PCI_STATUS.CAP_LIST);
  assert.equal(cs.read(PCI_HEADER.STATUS, 2), all & ~PCI_STATUS.REC_MASTER_ABORT, 'only the RW1C bit clears');
  cs.write(PCI_HEADER.STATUS, 2, 0xffff);
  assert.equal(cs.read(PCI_HEADER.STATUS, 2), PCI_STATUS.INTERRUPT | PCI_STATUS.CAP_LIST);
  // A dword write to command+status: the command half is stored, the status half clears.
  cs.setBits(PCI_HEADER.STATUS, 2, PCI_STATUS.DETECTED_PARITY, true);
  cs.write(PCI_HEADER.COMMAND, 4, (PCI_STATUS.DETECTED_PARITY << 16) | PCI_COMMAND.MASTER);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 4), ((PCI_STATUS.INTERRUPT | PCI_STATUS.CAP_LIST) << 16) | PCI_COMMAND.MASTER);
});

test('interrupt line is RW, pin is RO, cache line size is RW', () => {
  const cs = header();
  cs.write(PCI_HEADER.INTERRUPT_LINE, 2, 0xffff);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_LINE, 1), 0xff);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_PIN, 1), 1);
  cs.write(PCI_HEADER.INTERRUPT_LINE, 1, 0x0b);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_LINE, 4), 0x0000010b);
  cs.write(PCI_HEADER.CACHE_LINE_SIZE, 4, 0xffffffff);
  assert.equal(cs.read(PCI_HEADER.CACHE_LINE_SIZE, 4), 0x000000ff, 'latency timer, header type, BIST read-only');
});

test('partial and unaligned accesses act byte by byte', () => {
  const cs = header();
  assert.equal(cs.read(1, 1), 0x43);
  assert.equal(cs.read(1, 2), 0x5343);
  assert.equal(cs.read(1, 4), 0x00325343, 'unaligned dword runs into the command register');
  assert.equal(cs.read(3, 2), 0x0032, 'crosses into command');
  // A dword write at 0x3b covers a reserved byte, line, pin and Min_Gnt.
  cs.write(0x3b, 4, 0xffffffff);
  assert.equal(cs.read(0x3c, 2), 0x01ff, 'line written, pin kept');
  // High byte of command alone.
  cs.write(PCI_HEADER.COMMAND + 1, 1, 0xff);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), PCI_COMMAND.INTX_DISABLE);
});

test('accesses outside the space or of odd widths are EINVAL', () => {
  const cs = header();
  assert.throws(() => cs.read(256, 1), EINVAL);
  assert.throws(() => cs.read(255, 2), EINVAL);
  assert.throws(() => cs.read(253, 4), EINVAL);
  assert.throws(() => cs.write(254, 4, 0), EINVAL);
  assert.throws(() => cs.read(-1, 1), EINVAL);
  assert.throws(() => cs.read(0.5, 1), EINVAL);
  assert.throws(() => cs.read(0, 3 as 1), EINVAL);
  assert.throws(() => cs.write(0, 8 as 4, 0), EINVAL);
  assert.throws(() => cs.readBytes(250, new Uint8Array(7)), EINVAL);
  assert.throws(() => cs.writeBytes(200, new Uint8Array(57)), EINVAL);
  assert.equal(cs.read(252, 4), 0, 'last dword is fine');
  const ext = header({ extended: true });
  assert.equal(ext.size, 4096);
  assert.equal(ext.read(0xffc, 4), 0);
  assert.throws(() => ext.read(0xffe, 4), EINVAL);
  assert.throws(() => new ConfigSpace(512), EINVAL);
});

test('bulk reads and writes go through the same masks', () => {
  const cs = header();
  const all = new Uint8Array(256);
  cs.readBytes(0, all);
  assert.deepEqual([...all.subarray(0, 4)], [0x48, 0x43, 0x53, 0x32]);
  cs.writeBytes(0, new Uint8Array(256).fill(0xff));
  cs.readBytes(0, all);
  assert.equal(all[0], 0x48, 'vendor ID kept');
  assert.equal(all[PCI_HEADER.INTERRUPT_LINE], 0xff);
  assert.equal(all[PCI_HEADER.INTERRUPT_PIN], 1);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), PCI_COMMAND.MASTER | PCI_COMMAND.INTX_DISABLE);
});

test('write listeners run for overlapping writes only, after the write', () => {
  const cs = header();
  const seen: Array<[number, number, number]> = [];
  const remove = cs.onWrite(PCI_HEADER.COMMAND, 2, (off, size) => seen.push([off, size, cs.read(PCI_HEADER.COMMAND, 2)]));
  cs.write(PCI_HEADER.STATUS, 2, 0);
  cs.write(0, 4, 0);
  assert.equal(seen.length, 0);
  cs.write(PCI_HEADER.COMMAND + 1, 1, 0x04);
  assert.deepEqual(seen[0], [5, 1, PCI_COMMAND.INTX_DISABLE]);
  cs.writeBytes(0, new Uint8Array(8));
  assert.equal(seen.length, 2);
  cs.writeBytes(PCI_HEADER.COMMAND + 1, new Uint8Array(0));
  assert.equal(seen.length, 2, 'an empty write touches no register');
  remove();
  cs.write(PCI_HEADER.COMMAND, 2, 0);
  assert.equal(seen.length, 2);
});

test('define refuses bits both RW and RW1C, and bad identities', () => {
  const cs = new ConfigSpace();
  assert.throws(() => cs.define(0x40, 2, 0, { writable: 1, clearable: 1 }), EINVAL);
  assert.throws(() => ConfigSpace.type0({ vendorId: 0x10000, deviceId: 0, classCode: 0 }), EINVAL);
  assert.throws(() => ConfigSpace.type0({ vendorId: 0, deviceId: 0, classCode: 0, interruptPin: 5 }), EINVAL);
  cs.define(0x40, 4, 0x12345678, { writable: 0x0000ff00, clearable: 0x00ff0000 });
  assert.equal(cs.writableMask(0x40, 4), 0x0000ff00);
  assert.equal(cs.clearableMask(0x40, 4), 0x00ff0000);
  cs.write(0x40, 4, 0xffffffff);
  assert.equal(cs.read(0x40, 4), 0x1200ff78);
});

test('saved state is put back as it was, masks kept, no listener told', () => {
  const cs = header();
  const saved = cs.saveState();
  let told = 0;
  cs.onWrite(PCI_HEADER.COMMAND, 2, () => told++);
  cs.write(PCI_HEADER.COMMAND, 2, PCI_COMMAND.MASTER);
  cs.write(PCI_HEADER.INTERRUPT_LINE, 1, 0x0b);
  assert.equal(told, 1);
  cs.restoreState(saved);
  assert.equal(told, 1, 'a restore is not a software write');
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), 0);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_LINE, 1), 0);
  cs.write(PCI_HEADER.INTERRUPT_LINE, 1, 0x0c);
  assert.equal(cs.read(PCI_HEADER.INTERRUPT_LINE, 1), 0x0c, 'still writable');
  saved[0] = 0;
  assert.equal(cs.read(0, 1), 0x48, 'the saved copy is a copy');
  assert.throws(() => cs.restoreState(new Uint8Array(4096)), EINVAL);
});
