import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DeviceFlags,
  IrqInfoFlags,
  PciIrq,
  PciRegion,
  RegionFlags,
  VfioCore,
  VfioError,
  type DeviceFile,
  type EventNotifier,
  type SetIrqsRequest,
} from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { openFdCount } from '../../src/native/index.js';
import type { MappedMemory } from '../../src/native/index.js';
import { PCI_COMMAND, PCI_EXP, PCI_HEADER, PCI_MSI_FLAGS, PCI_MSIX, PCI_PM, PCI_STATUS, VfioPciDevice, MSIX_ENTRY } from '../../src/pci/index.js';
import { FakeNotifier } from './fake-notifier.js';

const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;
const { INTX, MSI, MSIX, ERR, REQ } = PciIrq;

const ROM = Uint8Array.of(0x55, 0xaa, 0x01);

/**
 * A function with one of everything: I/O BAR0 served by the driver, BAR1
 * backed by memory and holding the MSI-X table and PBA in its first page,
 * a backed 64-bit BAR2, a ROM, PM, MSI, MSI-X and PCIe with FLR.
 */
class Fn extends VfioPciDevice {
  readonly io = new Uint8Array(16);
  readonly bar1: MappedMemory;
  readonly bar2: MappedMemory;
  resets = 0;

  constructor(name: string, core: VfioCore) {
    super({
      name,
      core,
      header: { vendorId: 0x1af4, deviceId: 0x10f0, classCode: 0xff0000, revision: 3, interruptPin: 1 },
      bars: [
        { kind: 'io', size: 16 },
        { kind: 'mem32', size: 8192 },
        { kind: 'mem64', size: 65536, prefetchable: true },
      ],
      rom: { size: 2048, contents: ROM },
      capabilities: {
        pm: {},
        msi: { vectors: 4 },
        msix: { vectors: 8, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 },
        express: { flr: true },
      },
    });
    this.bar1 = this.backBar(1);
    this.bar2 = this.backBar(2);
  }

  protected override barRead(bar: number, offset: number, dest: Uint8Array): void {
    assert.equal(bar, 0);
    dest.set(this.io.subarray(offset, offset + dest.length));
  }

  protected override barWrite(bar: number, offset: number, src: Uint8Array): void {
    assert.equal(bar, 0);
    this.io.set(src, offset);
  }

  protected override resetFunction(): void {
    this.resets++;
    this.io.fill(0);
  }
}

async function setup(name = 'fn') {
  const core = new VfioCore({ requestBackoffMs: () => 5 });
  const dev = new Fn(name, core);
  dev.register();
  const file = await bound(dev);
  return { core, dev, file };
}

async function bound(dev: VfioPciDevice): Promise<DeviceFile> {
  const file = dev.openFile();
  await file.bindIommufd(new IommufdContext());
  return file;
}

async function read(f: DeviceFile, index: number, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await f.regionRead(index, offset, out);
  return out;
}

async function cfg(f: DeviceFile, offset: number, size: 1 | 2 | 4): Promise<number> {
  const b = await read(f, PciRegion.CONFIG, offset, size);
  return b.reduceRight((v, byte) => v * 256 + byte, 0);
}

async function setCfg(f: DeviceFile, offset: number, size: 1 | 2 | 4, value: number): Promise<void> {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (value >>> (8 * i)) & 0xff;
  await f.regionWrite(PciRegion.CONFIG, offset, b);
}

function attach(index: number, notifiers: Array<EventNotifier | null>, start = 0): SetIrqsRequest {
  return { index, start, count: notifiers.length, action: 'trigger', data: 'eventfd', values: notifiers };
}

test('device info: a PCI device that can be reset, with 9 regions and 5 irq indexes', async () => {
  const { dev, file } = await setup();
  assert.deepEqual(await file.getInfo(), { flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: 9, numIrqs: 5 });
  await file.close();
  await dev.unregister();
});

test('region info: BARs by kind and backing, size 0 for what is absent, ROM read-only, config, no VGA', async () => {
  const { dev, file } = await setup();
  const rw = RegionFlags.READ | RegionFlags.WRITE;
  assert.deepEqual(await file.getRegionInfo(0), { index: 0, flags: rw, size: 16 });
  assert.deepEqual(await file.getRegionInfo(1), {
    index: 1,
    flags: rw | RegionFlags.MMAP,
    size: 8192,
    mmap: { fd: dev.bar1.fd, offset: 0 },
    sparseMmap: [{ offset: 4096, size: 4096 }],
  });
  assert.deepEqual(await file.getRegionInfo(2), { index: 2, flags: rw | RegionFlags.MMAP, size: 65536, mmap: { fd: dev.bar2.fd, offset: 0 } });
  for (const i of [3, 4, 5]) assert.deepEqual(await file.getRegionInfo(i), { index: i, flags: 0, size: 0 }, `BAR${i}`);
  assert.deepEqual(await file.getRegionInfo(PciRegion.ROM), { index: 6, flags: RegionFlags.READ, size: 2048 });
  assert.deepEqual(await file.getRegionInfo(PciRegion.CONFIG), { index: 7, flags: rw, size: 4096 });
  assert.deepEqual(await file.getRegionInfo(PciRegion.VGA), { index: 8, flags: 0, size: 0 });
  assert.throws(() => file.getRegionInfo(9), isCode('EINVAL'));
  assert.throws(() => file.getRegionInfo(-1), isCode('EINVAL'));
  await file.close();
  await dev.unregister();
});

test('irq info: INTx maskable and automasked, MSI fixed, MSI-X, ERR for PCIe, REQ', async () => {
  const { dev, file } = await setup();
  assert.deepEqual(await file.getIrqInfo(INTX), {
    index: INTX,
    count: 1,
    flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED,
  });
  assert.deepEqual(await file.getIrqInfo(MSI), { index: MSI, count: 4, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.NORESIZE });
  assert.deepEqual(await file.getIrqInfo(MSIX), { index: MSIX, count: 8, flags: IrqInfoFlags.EVENTFD });
  assert.deepEqual(await file.getIrqInfo(ERR), { index: ERR, count: 1, flags: IrqInfoFlags.EVENTFD });
  assert.deepEqual(await file.getIrqInfo(REQ), { index: REQ, count: 1, flags: IrqInfoFlags.EVENTFD });
  assert.throws(() => file.getIrqInfo(5), isCode('EINVAL'));
  await file.close();
  await dev.unregister();
});

test('config space through region 7: identity, BAR and ROM sizing, read-only bits, bounds', async () => {
  const { dev, file } = await setup();
  assert.equal(await cfg(file, 0, 4), 0x10f01af4);
  assert.equal(await cfg(file, PCI_HEADER.REVISION_ID, 4), 0xff000003);
  assert.equal(await cfg(file, PCI_HEADER.INTERRUPT_PIN, 1), 1);
  // Sizing: all-ones in, size mask and type bits out.
  for (let bar = 0; bar < 6; bar++) await setCfg(file, 0x10 + 4 * bar, 4, 0xffffffff);
  await setCfg(file, PCI_HEADER.ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(await cfg(file, 0x10, 4), 0xfffffff1, 'BAR0: 16-byte I/O');
  assert.equal(await cfg(file, 0x14, 4), 0xffffe000, 'BAR1: 8 KiB memory');
  assert.equal(await cfg(file, 0x18, 4), 0xffff000c, 'BAR2: 64 KiB prefetchable 64-bit, low half');
  assert.equal(await cfg(file, 0x1c, 4), 0xffffffff, 'BAR2 high half');
  assert.equal(await cfg(file, 0x20, 4), 0, 'BAR4 absent');
  assert.equal(await cfg(file, PCI_HEADER.ROM_ADDRESS, 4), 0xfffff801, 'ROM: 2 KiB with its enable bit');
  // Program addresses; read-only identity ignores writes.
  await setCfg(file, 0x10, 4, 0xc040);
  assert.equal(await cfg(file, 0x10, 4), 0xc041);
  assert.equal(dev.bars.baseAddress(0), 0xc040n);
  await setCfg(file, 0, 4, 0);
  assert.equal(await cfg(file, 0, 4), 0x10f01af4);
  await setCfg(file, PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(await cfg(file, PCI_HEADER.COMMAND, 2), PCI_COMMAND.IO | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER | PCI_COMMAND.INTX_DISABLE);
  assert.ok((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.CAP_LIST);
  // The whole 4 KiB space reads; past its end is EINVAL.
  assert.equal((await read(file, PciRegion.CONFIG, 0, 4096)).length, 4096);
  assert.throws(() => file.regionRead(PciRegion.CONFIG, 4094, new Uint8Array(4)), isCode('EINVAL'));
  assert.throws(() => file.regionWrite(PciRegion.CONFIG, 4096, new Uint8Array(1)), isCode('EINVAL'));
  await file.close();
  await dev.unregister();
});

test('BAR accesses reach the driver, backed memory or MSI-X; outside a BAR is EINVAL', async () => {
  const { dev, file } = await setup();
  await file.regionWrite(0, 4, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual([...dev.io.subarray(4, 8)], [1, 2, 3, 4]);
  assert.deepEqual([...(await read(file, 0, 3, 3))], [0, 1, 2]);
  assert.throws(() => file.regionRead(0, 14, new Uint8Array(4)), isCode('EINVAL'));
  assert.throws(() => file.regionWrite(0, 16, new Uint8Array(1)), isCode('EINVAL'));
  // Backed memory: what the region writes is what a client's mapping sees.
  await file.regionWrite(2, 0x1000, Uint8Array.of(0xde, 0xad));
  assert.deepEqual([...dev.bar2.bytes.subarray(0x1000, 0x1002)], [0xde, 0xad]);
  dev.bar2.bytes[65535] = 7;
  assert.deepEqual([...(await read(file, 2, 65535, 1))], [7]);
  await file.regionWrite(1, 4096, Uint8Array.of(9));
  assert.equal(dev.bar1.bytes[4096], 9);
  // MSI-X table and PBA in BAR1 are the capability's, not the memory's.
  const entry = new Uint8Array(16);
  new DataView(entry.buffer).setUint32(MSIX_ENTRY.DATA, 0x4321, true);
  entry[MSIX_ENTRY.VECTOR_CTRL] = MSIX_ENTRY.CTRL_MASKBIT;
  await file.regionWrite(1, 16, entry);
  assert.equal(dev.msix!.table.entry(1).data, 0x4321);
  assert.equal(dev.bar1.bytes[16 + MSIX_ENTRY.DATA], 0, 'the memory under the table is untouched');
  const back = await read(file, 1, 16 + MSIX_ENTRY.VECTOR_CTRL, 4);
  assert.equal(back[0], MSIX_ENTRY.CTRL_MASKBIT, 'vector control as written');
  assert.deepEqual([...(await read(file, 1, 0x800, 8))], [0, 0, 0, 0, 0, 0, 0, 0], 'PBA');
  assert.throws(() => file.regionRead(1, 0x7c, new Uint8Array(8)), isCode('EINVAL'), 'straddles the table end');
  // Regions that are not BARs.
  assert.throws(() => file.regionRead(3, 0, new Uint8Array(1)), isCode('EINVAL'), 'absent BAR');
  assert.throws(() => file.regionRead(PciRegion.VGA, 0, new Uint8Array(1)), isCode('EINVAL'));
  assert.throws(() => file.regionRead(9, 0, new Uint8Array(1)), isCode('EINVAL'));
  await file.close();
  await dev.unregister();
});

test('regionMemory: the bytes of a backed BAR (not its MSI-X parts) and of the ROM for reads; null elsewhere', async () => {
  const { dev, file } = await setup();
  dev.bar2.bytes.set([1, 2, 3], 0x100);
  const view = file.regionMemory(2, 0x100, 3, false)!;
  assert.deepEqual([...view], [1, 2, 3]);
  file.regionMemory(2, 0x100, 3, true)!.set([7, 8, 9]);
  assert.deepEqual([...dev.bar2.bytes.subarray(0x100, 0x103)], [7, 8, 9], 'a view of the memory itself');
  assert.ok(file.regionMemory(1, 0x1000, 16, true) !== null, 'BAR1 memory beside its MSI-X table');
  assert.equal(file.regionMemory(1, 16, 16, false), null, 'the MSI-X table is registers');
  assert.equal(file.regionMemory(1, 0x800, 8, true), null, 'the PBA is registers');
  assert.equal(file.regionMemory(0, 0, 4, false), null, "BAR0 is the driver's registers");
  assert.equal(file.regionMemory(PciRegion.CONFIG, 0, 4, false), null);
  assert.deepEqual([...file.regionMemory(PciRegion.ROM, 0, 2, false)!], [0x55, 0xaa]);
  assert.equal(file.regionMemory(PciRegion.ROM, 0, 2, true), null, 'the ROM is not written');
  assert.throws(() => file.regionMemory(2, 65535, 2, false), isCode('EINVAL'), 'past the BAR');
  await file.close();
  await dev.unregister();
});

test('mmap hands out the fd of a backed BAR; other regions are EINVAL', async () => {
  const { dev, file } = await setup();
  assert.deepEqual(await file.mmap(1), { fd: dev.bar1.fd, offset: 0 });
  assert.deepEqual(await file.mmap(2), { fd: dev.bar2.fd, offset: 0 });
  for (const i of [0, 3, PciRegion.ROM, PciRegion.CONFIG, 9]) assert.throws(() => file.mmap(i), isCode('EINVAL'), `region ${i}`);
  await file.close();
  await dev.unregister();
});

test('the ROM region reads its contents, zero-filled; it cannot be written', async () => {
  const { dev, file } = await setup();
  assert.deepEqual([...(await read(file, PciRegion.ROM, 0, 4))], [0x55, 0xaa, 0x01, 0]);
  assert.deepEqual([...(await read(file, PciRegion.ROM, 2046, 2))], [0, 0]);
  assert.throws(() => file.regionRead(PciRegion.ROM, 2047, new Uint8Array(2)), isCode('EINVAL'));
  assert.throws(() => file.regionWrite(PciRegion.ROM, 0, new Uint8Array(1)), isCode('EINVAL'));
  await file.close();
  await dev.unregister();
});

test('INTx: signalled once, automasked until UNMASK, signalled again while still asserted', async () => {
  const { dev, file } = await setup();
  const n = new FakeNotifier();
  await file.setIrqs(attach(INTX, [n]));
  dev.irqs.setLevel(true);
  assert.equal(n.count, 1);
  assert.equal(dev.irqs.intxMasked, true);
  assert.ok((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.INTERRUPT);
  dev.irqs.setLevel(false);
  dev.irqs.setLevel(true);
  assert.equal(n.count, 1, 'masked: no second signal');
  await file.setIrqs({ index: INTX, start: 0, count: 1, action: 'unmask', data: 'none' });
  assert.equal(n.count, 2, 'still asserted at unmask');
  dev.irqs.setLevel(false);
  await file.setIrqs({ index: INTX, start: 0, count: 1, action: 'unmask', data: 'bool', values: [true] });
  assert.equal(n.count, 2);
  assert.equal((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.INTERRUPT, 0);
  // MASK holds a new assertion; INTx Disable in the command register too.
  await file.setIrqs({ index: INTX, start: 0, count: 1, action: 'mask', data: 'none' });
  dev.irqs.setLevel(true);
  assert.equal(n.count, 2);
  await setCfg(file, PCI_HEADER.COMMAND, 2, PCI_COMMAND.INTX_DISABLE);
  await file.setIrqs({ index: INTX, start: 0, count: 1, action: 'unmask', data: 'none' });
  assert.equal(n.count, 2, 'INTx Disable holds it');
  await setCfg(file, PCI_HEADER.COMMAND, 2, 0);
  assert.equal(n.count, 3, 'clearing INTx Disable lets it through');
  await file.close();
  assert.equal(n.closed, true);
  await dev.unregister();
});

test('MSI through SET_IRQS: enables the capability, device edges signal vectors, mask bits hold them', async () => {
  const { dev, file } = await setup();
  const ns = [new FakeNotifier(), new FakeNotifier()];
  await file.setIrqs(attach(MSI, ns));
  const flags = await cfg(file, dev.msi!.offset + 2, 2);
  assert.ok(flags & PCI_MSI_FLAGS.ENABLE, 'MSI enabled');
  assert.equal((flags & PCI_MSI_FLAGS.QSIZE) >> 4, 1, 'two vectors granted');
  assert.equal(dev.irqs.mode, 'msi');
  dev.irqs.raise(1);
  dev.irqs.setLevel(true);
  assert.deepEqual(
    ns.map((n) => n.count),
    [1, 1],
  );
  dev.irqs.setLevel(true);
  assert.deepEqual(
    ns.map((n) => n.count),
    [1, 1],
    'a level held high is one edge',
  );
  // Loopback trigger from the client.
  await file.setIrqs({ index: MSI, start: 0, count: 2, action: 'trigger', data: 'bool', values: [false, true] });
  assert.deepEqual(
    ns.map((n) => n.count),
    [1, 2],
  );
  // Per-vector mask in config space: pending while masked, sent on unmask.
  const maskAt = dev.msi!.offset + 0x10;
  await setCfg(file, maskAt, 4, 1);
  dev.irqs.raise(0);
  assert.equal(ns[0]!.count, 1);
  assert.equal(dev.msi!.isPending(0), true);
  await setCfg(file, maskAt, 4, 0);
  assert.equal(ns[0]!.count, 2);
  // MSI cannot be masked through SET_IRQS; INTx cannot be attached meanwhile.
  assert.throws(() => file.setIrqs({ index: MSI, start: 0, count: 1, action: 'mask', data: 'none' }), isCode('EINVAL'));
  assert.throws(() => file.setIrqs(attach(INTX, [new FakeNotifier()])), isCode('EINVAL'));
  // Disable: DATA_NONE, count 0.
  await file.setIrqs({ index: MSI, start: 0, count: 0, action: 'trigger', data: 'none' });
  assert.equal(
    ns.every((n) => n.closed),
    true,
  );
  assert.equal((await cfg(file, dev.msi!.offset + 2, 2)) & PCI_MSI_FLAGS.ENABLE, 0);
  assert.equal(dev.irqs.mode, 'intx');
  await file.close();
  await dev.unregister();
});

test('MSI-X through SET_IRQS: attaching unmasks the vector in the table', async () => {
  const { dev, file } = await setup();
  const n = new FakeNotifier();
  await file.setIrqs(attach(MSIX, [n], 3));
  assert.ok((await cfg(file, dev.msix!.offset + PCI_MSIX.FLAGS, 2)) & PCI_MSIX.FLAGS_ENABLE);
  assert.equal(dev.msix!.table.isVectorMasked(3), false);
  assert.equal(dev.msix!.table.isVectorMasked(0), true);
  dev.irqs.raise(3);
  assert.equal(n.count, 1);
  dev.irqs.raise(0);
  assert.equal(dev.msix!.table.isPending(0), true, 'unattached vector stays masked and pending');
  // Function mask through config space.
  await setCfg(file, dev.msix!.offset + PCI_MSIX.FLAGS, 2, PCI_MSIX.FLAGS_ENABLE | PCI_MSIX.FLAGS_MASKALL);
  dev.irqs.raise(3);
  assert.equal(n.count, 1);
  await setCfg(file, dev.msix!.offset + PCI_MSIX.FLAGS, 2, PCI_MSIX.FLAGS_ENABLE);
  assert.equal(n.count, 2);
  await file.close();
  await dev.unregister();
});

test('REQ is signalled while unregister waits for the client, who then lets go', async () => {
  const { dev, file } = await setup();
  const req = new FakeNotifier();
  await file.setIrqs(attach(REQ, [req]));
  let released = false;
  const gone = dev.unregister().then(() => {
    released = true;
  });
  assert.equal(req.count, 1, 'first request at once');
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(req.count >= 2, `asked again with back-off (${req.count})`);
  assert.equal(released, false);
  assert.throws(() => dev.openFile(), isCode('ENODEV'));
  // The open file still works until its holder closes it.
  assert.equal(await cfg(file, 0, 2), 0x1af4);
  await file.close();
  await gone;
  assert.equal(req.closed, true);
  assert.equal(dev.state, 'released');
});

test('no REQ trigger: unregister still waits, and nothing is signalled', async () => {
  const { dev, file } = await setup();
  const gone = dev.unregister();
  await new Promise((r) => setTimeout(r, 10));
  await file.close();
  await gone;
});

test('last close disables the interrupts and keeps the function state for the next client', async () => {
  const { dev, file } = await setup();
  const intx = new FakeNotifier();
  const req = new FakeNotifier();
  await file.setIrqs(attach(INTX, [intx]));
  await file.setIrqs(attach(REQ, [req]));
  await setCfg(file, PCI_HEADER.INTERRUPT_LINE, 1, 11);
  await setCfg(file, 0x10, 4, 0xc000);
  await setCfg(file, PCI_HEADER.COMMAND, 2, PCI_COMMAND.IO);
  await file.regionWrite(0, 0, Uint8Array.of(0x42));
  await file.regionWrite(2, 0, Uint8Array.of(0x43));
  dev.irqs.setLevel(true);
  assert.equal(intx.count, 1);
  await file.close();
  assert.equal(intx.closed && req.closed, true, 'eventfds let go');
  assert.equal(dev.irqs.intxMasked, false);

  const again = await bound(dev);
  assert.equal(await cfg(again, PCI_HEADER.INTERRUPT_LINE, 1), 11);
  assert.equal(await cfg(again, 0x10, 4), 0xc001);
  assert.equal(await cfg(again, PCI_HEADER.COMMAND, 2), PCI_COMMAND.IO);
  assert.deepEqual([...(await read(again, 0, 0, 1))], [0x42]);
  assert.deepEqual([...(await read(again, 2, 0, 1))], [0x43]);
  // The line is still asserted: the new client's INTx trigger is signalled at once.
  const intx2 = new FakeNotifier();
  await again.setIrqs(attach(INTX, [intx2]));
  assert.equal(intx2.count, 1);
  await again.close();
  await dev.unregister();
});

test('last close also turns off MSI a guest enabled in config space', async () => {
  const { dev, file } = await setup();
  await file.setIrqs(attach(MSIX, [new FakeNotifier()]));
  await file.setIrqs({ index: MSIX, start: 0, count: 0, action: 'trigger', data: 'none' });
  await setCfg(file, dev.msi!.offset + 2, 2, PCI_MSI_FLAGS.ENABLE);
  assert.equal(dev.irqs.mode, 'msi');
  await file.close();
  assert.equal(dev.irqs.mode, 'intx');
  await dev.unregister();
});

test('reset: config space and capabilities to power-on, the driver hook runs, triggers stay', async () => {
  const { dev, file } = await setup();
  const power = await read(file, PciRegion.CONFIG, 0, 4096);
  const ns = [new FakeNotifier()];
  await file.setIrqs(attach(MSI, ns));
  await setCfg(file, PCI_HEADER.INTERRUPT_LINE, 1, 5);
  await setCfg(file, 0x14, 4, 0xfebf0000);
  await setCfg(file, PCI_HEADER.COMMAND, 2, PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER);
  await setCfg(file, dev.pm!.offset + PCI_PM.CTRL, 2, 3);
  await setCfg(file, dev.msi!.offset + 4, 4, 0xfee00000);
  await file.regionWrite(0, 0, Uint8Array.of(1));
  dev.irqs.setLevel(true);
  assert.equal(ns[0]!.count, 1, 'the rising line sent vector 0');
  assert.equal(dev.pm!.powerState, 3);
  await file.reset();
  assert.equal(dev.resets, 1);
  assert.equal(dev.io[0], 0, 'driver state reset');
  assert.equal(dev.pm!.powerState, 0);
  assert.equal(dev.irqs.level, false);
  const after = await read(file, PciRegion.CONFIG, 0, 4096);
  // The MSI enable of the attached trigger is restored; everything else is as at power-on.
  const flagsAt = dev.msi!.offset + 2;
  assert.ok(after[flagsAt]! & PCI_MSI_FLAGS.ENABLE);
  after[flagsAt] = power[flagsAt]!;
  assert.deepEqual(after, power);
  dev.irqs.raise(0);
  assert.equal(ns[0]!.count, 2, 'the trigger survived the reset');
  await file.close();
  await dev.unregister();
});

test('reset keeps attached MSI-X vectors unmasked and the rest masked', async () => {
  const { dev, file } = await setup();
  const n = new FakeNotifier();
  await file.setIrqs(attach(MSIX, [n], 2));
  await file.reset();
  assert.equal(dev.msix!.enabled, true);
  assert.equal(dev.msix!.table.isVectorMasked(2), false);
  assert.equal(dev.msix!.table.isVectorMasked(1), true);
  dev.irqs.raise(2);
  assert.equal(n.count, 1);
  await file.close();
  await dev.unregister();
});

test('FLR through the PCI Express capability resets the function', async () => {
  const { dev, file } = await setup();
  const devctl = dev.express!.offset + PCI_EXP.DEVCTL;
  await setCfg(file, PCI_HEADER.INTERRUPT_LINE, 1, 9);
  await file.regionWrite(0, 0, Uint8Array.of(1));
  await setCfg(file, devctl, 2, (await cfg(file, devctl, 2)) | PCI_EXP.DEVCTL_BCR_FLR);
  assert.equal(dev.resets, 1);
  assert.equal(await cfg(file, PCI_HEADER.INTERRUPT_LINE, 1), 0);
  assert.equal((await cfg(file, devctl, 2)) & PCI_EXP.DEVCTL_BCR_FLR, 0, 'initiate FLR reads 0');
  await file.close();
  await dev.unregister();
});

test('a PCI hot reset resets every device of the set', async () => {
  const core = new VfioCore({ requestBackoffMs: () => 5 });
  const a = new Fn('a', core);
  const b = new Fn('b', core);
  a.register({ setKey: 'slot' });
  b.register({ setKey: 'slot' });
  const fa = await bound(a);
  await fa.pciHotReset();
  assert.deepEqual([a.resets, b.resets], [1, 1]);
  await fa.close();
  await Promise.all([a.unregister(), b.unregister()]);
});

test('a function without pin, MSI or PCIe reports those irqs with count 0', async () => {
  class Bare extends VfioPciDevice {}
  const core = new VfioCore();
  const dev = new Bare({ name: 'bare', core, header: { vendorId: 1, deviceId: 2, classCode: 0 } });
  dev.register();
  const file = await bound(dev);
  for (const i of [INTX, MSI, MSIX, ERR]) assert.equal((await file.getIrqInfo(i)).count, 0);
  assert.equal((await file.getIrqInfo(REQ)).count, 1);
  assert.deepEqual(await file.getRegionInfo(PciRegion.CONFIG), { index: 7, flags: RegionFlags.READ | RegionFlags.WRITE, size: 256 });
  assert.deepEqual(await file.getRegionInfo(PciRegion.ROM), { index: 6, flags: 0, size: 0 });
  assert.throws(() => file.regionRead(0, 0, new Uint8Array(1)), isCode('EINVAL'));
  assert.throws(() => file.setIrqs(attach(INTX, [new FakeNotifier()])), isCode('EINVAL'));
  await file.reset();
  await file.close();
  await dev.unregister();
});

test('bad declarations are EINVAL: I/O BAR backed by memory, ROM contents too large', () => {
  const core = new VfioCore();
  class IoBacked extends VfioPciDevice {
    constructor() {
      super({ name: 'x', core, header: { vendorId: 1, deviceId: 2, classCode: 0 }, bars: [{ kind: 'io', size: 8 }] });
      this.backBar(0);
    }
  }
  assert.throws(() => new IoBacked(), isCode('EINVAL'));
  class BigRom extends VfioPciDevice {
    constructor() {
      super({ name: 'y', core, header: { vendorId: 1, deviceId: 2, classCode: 0 }, rom: { size: 2048, contents: new Uint8Array(4096) } });
    }
  }
  assert.throws(() => new BigRom(), isCode('EINVAL'));
});

test('BAR memory is freed at release: no fd outlives the device', async () => {
  const before = openFdCount();
  const { dev, file } = await setup('leak');
  assert.equal(openFdCount(), before + 2);
  await file.close();
  await dev.unregister();
  assert.equal(openFdCount(), before);
});
