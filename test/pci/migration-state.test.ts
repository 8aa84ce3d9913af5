/**
 * The PCI library's parts of migration: interrupts held while the device
 * is stopped and sent when it runs again (MSI-X, MSI, INTx; REQ never
 * held), the MSI-X table and PBA saved and restored through their masks,
 * and a config space checked against the function before it is restored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { PciIrq } from '../../src/base/uapi.js';
import { Bars } from '../../src/pci/bar.js';
import { CapabilityList } from '../../src/pci/capabilities.js';
import { ConfigSpace, PCI_HEADER, PCI_STATUS } from '../../src/pci/config-space.js';
import { PciInterrupts } from '../../src/pci/interrupts.js';
import { MSIX_ENTRY, MsixTable } from '../../src/pci/msix-table.js';
import { FakeNotifier } from './fake-notifier.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function fn() {
  const cs = ConfigSpace.type0({ vendorId: 0x1234, deviceId: 0x1, classCode: 0xff0000, interruptPin: 1 });
  const bars = new Bars(cs, [{ kind: 'mem32', size: 4096 }]);
  const caps = new CapabilityList(cs);
  const msi = caps.addMsi({ vectors: 4 });
  const msix = caps.addMsix({ vectors: 8, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }, bars);
  const irqs = new PciInterrupts({ config: cs, msi, msix });
  return { cs, msi, msix, irqs };
}

test('paused: MSI-X vectors are held, each once, and sent on resume; REQ still goes out', () => {
  const { irqs } = fn();
  const v = [new FakeNotifier(), new FakeNotifier()];
  irqs.setTriggers(PciIrq.MSIX, 0, v);
  const req = new FakeNotifier();
  irqs.setTriggers(PciIrq.REQ, 0, [req]);
  irqs.pause();
  assert.equal(irqs.paused, true);
  irqs.raise(1);
  irqs.raise(1);
  assert.equal(irqs.signalRequest(), true);
  assert.deepEqual([v[0]!.count, v[1]!.count, req.count], [0, 0, 1]);
  irqs.resume();
  assert.deepEqual([v[0]!.count, v[1]!.count], [0, 1], 'held once, sent once');
  irqs.raise(0);
  assert.equal(v[0]!.count, 1, 'running again: straight through');
});

test('paused: an INTx level is signalled on resume; a reset while paused forgets what was held', () => {
  const { irqs } = fn();
  const n = new FakeNotifier();
  irqs.setTriggers(PciIrq.INTX, 0, [n]);
  irqs.pause();
  irqs.setLevel(true);
  assert.equal(n.count, 0);
  irqs.resume();
  assert.equal(n.count, 1);
  const m = new FakeNotifier();
  const { irqs: other } = fn();
  other.setTriggers(PciIrq.MSIX, 0, [m]);
  other.pause();
  other.raise(0);
  other.reset();
  other.resume();
  assert.equal(m.count, 0);
});

test('MSI-X table and PBA round-trip; restore keeps to the writable bits and existing vectors', () => {
  const a = new MsixTable(9);
  a.writeTable(16, Uint8Array.of(0x00, 0x00, 0xe0, 0xfe, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0));
  a.fire(3); // masked vector: pending
  const saved = a.saveState();
  const b = new MsixTable(9);
  b.restoreState(saved);
  assert.deepEqual(b.saveState(), saved);
  assert.equal(b.isPending(3), true);
  assert.equal(b.entry(1).data, 0x21);
  const junk = new Uint8Array(saved.length).fill(0xff);
  b.restoreState(junk);
  const back = b.saveState();
  assert.equal(back[MSIX_ENTRY.VECTOR_CTRL + 1], 0, 'reserved control bits stay 0');
  assert.equal(back[9 * 16 + 1], 0x01, 'PBA: vector 8 exists, 9..15 do not');
  assert.throws(() => b.restoreState(new Uint8Array(3)), EINVAL);
});

test('config space: another function is refused; bits the function drives may differ', () => {
  const { cs, msi } = fn();
  const saved = cs.saveState();
  saved[PCI_HEADER.STATUS] = saved[PCI_HEADER.STATUS]! | PCI_STATUS.INTERRUPT;
  assert.throws(() => cs.checkState(saved), EINVAL, 'interrupt status is read-only to software');
  cs.checkState(saved, [[PCI_HEADER.STATUS, 2, PCI_STATUS.INTERRUPT]]);
  const pending = cs.saveState();
  pending[msi.pendingOffset] = 1;
  cs.checkState(pending, [[msi.pendingOffset, 4, 0xffffffff]]);
  const other = cs.saveState();
  other[PCI_HEADER.DEVICE_ID] = 2;
  assert.throws(() => cs.checkState(other, [[PCI_HEADER.STATUS, 2, PCI_STATUS.INTERRUPT]]), EINVAL);
  const written = cs.saveState();
  written[PCI_HEADER.COMMAND] = cs.writableMask(PCI_HEADER.COMMAND, 1);
  cs.checkState(written);
  assert.throws(() => cs.checkState(new Uint8Array(4096)), EINVAL);
});
