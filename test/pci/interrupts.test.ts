import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { Bars } from '../../src/pci/bar.js';
import { CapabilityList, PCI_MSI_FLAGS, PCI_MSIX } from '../../src/pci/capabilities.js';
import { ConfigSpace, PCI_COMMAND, PCI_HEADER, PCI_STATUS } from '../../src/pci/config-space.js';
import { IrqInfoFlags, PciIrq } from '../../src/base/uapi.js';
import { PciInterrupts } from '../../src/pci/interrupts.js';
import { FakeNotifier } from './fake-notifier.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';
const { INTX, MSI, MSIX, ERR, REQ } = PciIrq;

function fn(options: { pin?: number; errorReporting?: boolean } = {}) {
  const cs = ConfigSpace.type0({ vendorId: 0x1234, deviceId: 0x1, classCode: 0xff0000, interruptPin: options.pin ?? 1 });
  const bars = new Bars(cs, [{ kind: 'mem32', size: 4096 }]);
  const caps = new CapabilityList(cs);
  const msi = caps.addMsi({ vectors: 4 });
  const msix = caps.addMsix({ vectors: 8, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }, bars);
  const irqs = new PciInterrupts({ config: cs, msi, msix, errorReporting: options.errorReporting ?? false });
  return { cs, msi, msix, irqs };
}

function notifiers(n: number): FakeNotifier[] {
  return Array.from({ length: n }, () => new FakeNotifier());
}

function status(cs: ConfigSpace): boolean {
  return (cs.read(PCI_HEADER.STATUS, 2) & PCI_STATUS.INTERRUPT) !== 0;
}

test('irq info: counts and flags per index', () => {
  const { irqs } = fn();
  assert.deepEqual(irqs.info(INTX), { index: INTX, count: 1, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED });
  assert.deepEqual(irqs.info(MSI), { index: MSI, count: 4, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.NORESIZE });
  assert.deepEqual(irqs.info(MSIX), { index: MSIX, count: 8, flags: IrqInfoFlags.EVENTFD });
  assert.deepEqual(irqs.info(ERR), { index: ERR, count: 0, flags: IrqInfoFlags.EVENTFD });
  assert.deepEqual(irqs.info(REQ), { index: REQ, count: 1, flags: IrqInfoFlags.EVENTFD });
  assert.equal(fn({ errorReporting: true }).irqs.info(ERR).count, 1);
  assert.equal(fn({ pin: 0 }).irqs.info(INTX).count, 0);
  assert.throws(() => irqs.info(5), EINVAL);
});

test('INTx is automasked on signal and signalled again on unmask while asserted', () => {
  const { cs, irqs } = fn();
  const [n] = notifiers(1);
  irqs.setTriggers(INTX, 0, [n!]);
  assert.equal(irqs.mode, 'intx');
  irqs.setLevel(true);
  assert.equal(n!.count, 1);
  assert.equal(irqs.intxMasked, true);
  assert.equal(status(cs), true);
  irqs.setLevel(true);
  irqs.setLevel(false);
  irqs.setLevel(true);
  assert.equal(n!.count, 1, 'masked: nothing more until UNMASK');
  irqs.unmask(INTX, 0, 1);
  assert.equal(n!.count, 2, 'still asserted at unmask: signalled and masked again');
  assert.equal(irqs.intxMasked, true);
  irqs.setLevel(false);
  assert.equal(status(cs), false);
  irqs.unmask(INTX, 0, 1);
  assert.equal(n!.count, 2, 'deasserted at unmask: nothing');
  assert.equal(irqs.intxMasked, false);
  irqs.mask(INTX, 0, 1);
  irqs.setLevel(true);
  assert.equal(n!.count, 2, 'client MASK holds it too');
  irqs.unmask(INTX, 0, 1, [false]);
  assert.equal(n!.count, 2, 'DATA_BOOL false does nothing');
  irqs.unmask(INTX, 0, 1, [true]);
  assert.equal(n!.count, 3);
});

test('INTx Disable in the command register holds the line; status still shows it', () => {
  const { cs, irqs } = fn();
  const [n] = notifiers(1);
  irqs.setTriggers(INTX, 0, [n!]);
  cs.write(PCI_HEADER.COMMAND, 2, PCI_COMMAND.INTX_DISABLE);
  irqs.setLevel(true);
  assert.equal(n!.count, 0);
  assert.equal(status(cs), true);
  cs.write(PCI_HEADER.COMMAND, 2, 0);
  assert.equal(n!.count, 1, 'clearing INTx Disable lets the asserted line through');
});

test('INTx pulses (raise) are held while masked and cleared once signalled', () => {
  const { cs, irqs } = fn();
  irqs.raise();
  assert.equal(status(cs), true, 'no trigger yet: the pulse waits');
  const [n] = notifiers(1);
  irqs.setTriggers(INTX, 0, [n!]);
  assert.equal(n!.count, 1, 'attaching a trigger delivers it');
  assert.equal(status(cs), false);
  irqs.raise();
  irqs.raise();
  assert.equal(n!.count, 1);
  irqs.unmask(INTX, 0, 1);
  assert.equal(n!.count, 2, 'pulses while masked collapse into one');
  irqs.unmask(INTX, 0, 1);
  assert.equal(n!.count, 2);
});

test('MSI enabled by software: vectors signal their own triggers, masks hold them', () => {
  const { cs, msi, irqs } = fn();
  const ns = notifiers(4);
  cs.write(msi.offset + 2, 2, PCI_MSI_FLAGS.ENABLE | (2 << 4));
  assert.equal(irqs.mode, 'msi');
  irqs.setTriggers(MSI, 0, ns);
  irqs.raise(2);
  irqs.raise(9);
  assert.deepEqual(
    ns.map((n) => n.count),
    [0, 0, 1, 1],
    'beyond the granted vectors: the last one',
  );
  cs.write(msi.offset + 0x10, 4, 0b0100);
  irqs.raise(2);
  assert.equal(ns[2]!.count, 1);
  assert.equal(msi.isPending(2), true);
  cs.write(msi.offset + 0x10, 4, 0);
  assert.equal(ns[2]!.count, 2, 'sent on unmask');
  // INTx is silent while MSI is on.
  irqs.setLevel(true);
  assert.equal(ns[0]!.count, 1, 'a rising level sends vector 0');
  irqs.setLevel(true);
  assert.equal(ns[0]!.count, 1, 'no edge, no message');
  assert.equal(status(cs), false);
});

test('SET_IRQS for MSI enables it in the function like a host kernel would', () => {
  const { msi, irqs } = fn();
  const ns = notifiers(2);
  irqs.setTriggers(MSI, 0, ns);
  assert.equal(msi.enabled, true);
  assert.equal(msi.allocatedVectors, 2);
  irqs.raise(1);
  assert.equal(ns[1]!.count, 1);
  irqs.disable(MSI);
  assert.equal(msi.enabled, false);
  assert.deepEqual(
    ns.map((n) => n.closed),
    [true, true],
  );
  assert.equal(irqs.mode, 'intx');
});

test('MSI-X: attaching vectors enables MSI-X and unmasks them; masks and function mask pend', () => {
  const { cs, msix, irqs } = fn();
  const ns = notifiers(3);
  irqs.setTriggers(MSIX, 0, ns);
  assert.equal(irqs.mode, 'msix');
  assert.equal(msix.enabled, true);
  irqs.raise(1);
  assert.deepEqual(
    ns.map((n) => n.count),
    [0, 1, 0],
  );
  irqs.raise(5);
  assert.equal(msix.table.isPending(5), true, 'vector without a trigger stays masked');
  // Function mask set by software.
  cs.write(msix.offset + PCI_MSIX.FLAGS, 2, PCI_MSIX.FLAGS_ENABLE | PCI_MSIX.FLAGS_MASKALL);
  irqs.raise(0);
  assert.equal(ns[0]!.count, 0);
  cs.write(msix.offset + PCI_MSIX.FLAGS, 2, PCI_MSIX.FLAGS_ENABLE);
  assert.equal(ns[0]!.count, 1, 'sent when the function mask clears');
  // Per-vector mask written by software into the table.
  const ctrl = new Uint8Array([1, 0, 0, 0]);
  msix.table.writeTable(2 * 16 + 12, ctrl);
  irqs.raise(2);
  assert.equal(ns[2]!.count, 0);
  msix.table.writeTable(2 * 16 + 12, new Uint8Array(4));
  assert.equal(ns[2]!.count, 1);
  // Detaching one vector masks it again.
  irqs.setTriggers(MSIX, 1, [null]);
  assert.equal(ns[1]!.closed, true);
  assert.equal(msix.table.isVectorMasked(1), true);
  irqs.disable(MSIX);
  assert.equal(msix.enabled, false);
  assert.equal(irqs.mode, 'intx');
});

test('only one of INTx, MSI and MSI-X may have triggers', () => {
  const { irqs } = fn();
  irqs.setTriggers(INTX, 0, [new FakeNotifier()]);
  const refused = new FakeNotifier();
  assert.throws(() => irqs.setTriggers(MSI, 0, [refused]), EINVAL);
  assert.equal(refused.closed, false, 'a refused notifier is not taken: the caller still owns it');
  assert.throws(() => irqs.setTriggers(MSIX, 0, [new FakeNotifier()]), EINVAL);
  irqs.setTriggers(REQ, 0, [new FakeNotifier()]);
  irqs.setTriggers(INTX, 0, [null]);
  irqs.setTriggers(MSIX, 0, [new FakeNotifier()]);
  assert.throws(() => irqs.setTriggers(INTX, 0, [new FakeNotifier()]), EINVAL);
});

test('replacing a trigger closes the old one; release closes them all', () => {
  const { irqs } = fn();
  const [a, b, r] = notifiers(3);
  irqs.setTriggers(INTX, 0, [a!]);
  irqs.setTriggers(INTX, 0, [b!]);
  assert.equal(a!.closed, true);
  assert.equal(b!.closed, false);
  irqs.setTriggers(INTX, 0, [b!]);
  assert.equal(b!.closed, false, 'the same notifier again is kept');
  irqs.setTriggers(REQ, 0, [r!]);
  irqs.setLevel(true);
  irqs.release();
  assert.equal(b!.closed, true);
  assert.equal(r!.closed, true);
  assert.equal(irqs.intxMasked, false);
  assert.equal(irqs.signalRequest(), false);
  assert.equal(irqs.level, true, 'the device state stays');
});

test('loopback trigger, REQ and ERR', () => {
  const { irqs } = fn({ errorReporting: true });
  const ns = notifiers(4);
  irqs.setTriggers(MSI, 0, ns);
  irqs.trigger(MSI, 1, 3, [true, false, true]);
  assert.deepEqual(
    ns.map((n) => n.count),
    [0, 1, 0, 1],
  );
  irqs.trigger(MSI, 0, 4);
  assert.deepEqual(
    ns.map((n) => n.count),
    [1, 2, 1, 2],
  );
  const [req, err] = notifiers(2);
  irqs.setTriggers(REQ, 0, [req!]);
  irqs.setTriggers(ERR, 0, [err!]);
  assert.equal(irqs.signalRequest(), true);
  assert.equal(irqs.signalError(), true);
  assert.deepEqual([req!.count, err!.count], [1, 1]);
  irqs.disable(REQ);
  assert.equal(req!.closed, true);
  assert.equal(fn().irqs.signalError(), false);
});

test('bad ranges and masking anything but INTx are EINVAL', () => {
  const { irqs } = fn();
  assert.throws(() => irqs.setTriggers(INTX, 0, [new FakeNotifier(), new FakeNotifier()]), EINVAL);
  assert.throws(() => irqs.setTriggers(MSI, 3, [new FakeNotifier(), new FakeNotifier()]), EINVAL);
  assert.throws(() => irqs.setTriggers(MSIX, 0, []), EINVAL);
  assert.throws(() => irqs.setTriggers(ERR, 0, [new FakeNotifier()]), EINVAL, 'no ERR on a conventional function');
  assert.throws(() => irqs.mask(MSI, 0, 1), EINVAL);
  assert.throws(() => irqs.unmask(MSIX, 0, 1), EINVAL);
  assert.throws(() => irqs.mask(INTX, 0, 1, [true, true]), EINVAL);
  assert.throws(() => irqs.trigger(INTX, 0, 2), EINVAL);
  assert.throws(() => irqs.raise(-1), EINVAL);
  assert.throws(() => irqs.disable(7), EINVAL);
  const nopin = fn({ pin: 0 }).irqs;
  assert.throws(() => nopin.setTriggers(INTX, 0, [new FakeNotifier()]), EINVAL);
});

test('reset drops the line and held pulses, keeps the triggers', () => {
  const { cs, irqs } = fn();
  const [n] = notifiers(1);
  irqs.setTriggers(INTX, 0, [n!]);
  irqs.setLevel(true);
  irqs.raise();
  irqs.reset();
  assert.equal(status(cs), false);
  irqs.unmask(INTX, 0, 1);
  assert.equal(n!.count, 1);
  irqs.setLevel(true);
  assert.equal(n!.count, 2);
  assert.equal(n!.closed, false);
});

test('setIrqs decodes a SET_IRQS request into the same operations', () => {
  const { msi, irqs } = fn();
  const ns = notifiers(2);
  irqs.setIrqs({ index: MSI, start: 0, count: 2, action: 'trigger', data: 'eventfd', values: ns });
  assert.equal(msi.enabled, true);
  irqs.setIrqs({ index: MSI, start: 1, count: 1, action: 'trigger', data: 'none' });
  irqs.setIrqs({ index: MSI, start: 0, count: 2, action: 'trigger', data: 'bool', values: [true, false] });
  assert.deepEqual(
    ns.map((n) => n.count),
    [1, 1],
  );
  assert.throws(() => irqs.setIrqs({ index: MSI, start: 0, count: 2, action: 'trigger', data: 'bool', values: [true] }), EINVAL);
  irqs.setIrqs({ index: MSI, start: 0, count: 0, action: 'trigger', data: 'none' });
  assert.equal(msi.enabled, false);
  assert.deepEqual(
    ns.map((n) => n.closed),
    [true, true],
  );
  const [n] = notifiers(1);
  irqs.setIrqs({ index: INTX, start: 0, count: 1, action: 'trigger', data: 'eventfd', values: [n!] });
  irqs.setIrqs({ index: INTX, start: 0, count: 1, action: 'mask', data: 'none' });
  irqs.setLevel(true);
  assert.equal(n!.count, 0);
  irqs.setIrqs({ index: INTX, start: 0, count: 1, action: 'unmask', data: 'bool', values: [true] });
  assert.equal(n!.count, 1);
  const resample = new FakeNotifier();
  assert.throws(() => irqs.setIrqs({ index: INTX, start: 0, count: 1, action: 'unmask', data: 'eventfd', values: [resample] }), EINVAL);
  assert.equal(resample.closed, false, "refused notifiers stay the caller's");
  assert.throws(() => irqs.setIrqs({ index: REQ, start: 0, count: 1, action: 'mask', data: 'none' }), EINVAL);
});
