import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciIrq, PciRegion, RegionFlags, VfioCore, VfioError, type DeviceFile, type EventNotifier } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { PCI_CAP_ID, PCI_COMMAND, PCI_HEADER, PCI_MSI_FLAGS, PCI_STATUS } from '../../src/pci/index.js';
import { MttyDevice, createMttyDevice, type MttyPortCount } from '../../src/drivers/mtty/mtty-device.js';
import { UART_FCR, UART_IER, UART_IIR, UART_LCR, UART_LSR, UART_REG } from '../../src/drivers/mtty/uart.js';
import { FakeNotifier } from '../pci/fake-notifier.js';

const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;
const { INTX, MSI } = PciIrq;

async function card(ports: MttyPortCount) {
  const core = new VfioCore({ requestBackoffMs: () => 5 });
  const dev = createMttyDevice({ name: `mtty${ports}`, core, ports });
  dev.register();
  return { core, dev, file: await bind(dev) };
}

async function bind(dev: MttyDevice): Promise<DeviceFile> {
  const file = dev.openFile();
  await file.bindIommufd(new IommufdContext());
  return file;
}

async function done(dev: MttyDevice, ...files: DeviceFile[]): Promise<void> {
  for (const f of files) await f.close();
  await dev.unregister();
}

async function readBytes(f: DeviceFile, index: number, offset: number, length: number): Promise<number[]> {
  const out = new Uint8Array(length);
  await f.regionRead(index, offset, out);
  return [...out];
}

async function cfg(f: DeviceFile, offset: number, size: number): Promise<number> {
  return (await readBytes(f, PciRegion.CONFIG, offset, size)).reduceRight((v, b) => v * 256 + b, 0);
}

async function setCfg(f: DeviceFile, offset: number, size: number, value: number): Promise<void> {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (value >>> (8 * i)) & 0xff;
  await f.regionWrite(PciRegion.CONFIG, offset, b);
}

/** One UART register of port `port` (BAR `port`). */
async function reg(f: DeviceFile, port: number, offset: number): Promise<number> {
  return (await readBytes(f, port, offset, 1))[0]!;
}

async function setReg(f: DeviceFile, port: number, offset: number, value: number): Promise<void> {
  await f.regionWrite(port, offset, Uint8Array.of(value));
}

async function send(f: DeviceFile, port: number, text: string): Promise<void> {
  for (const ch of text) await setReg(f, port, UART_REG.TX, ch.charCodeAt(0));
}

async function drain(f: DeviceFile, port: number): Promise<string> {
  let s = '';
  while ((await reg(f, port, UART_REG.LSR)) & UART_LSR.DR) s += String.fromCharCode(await reg(f, port, UART_REG.RX));
  return s;
}

function attach(index: number, n: EventNotifier): Parameters<DeviceFile['setIrqs']>[0] {
  return { index, start: 0, count: 1, action: 'trigger', data: 'eventfd', values: [n] };
}

const unmask = { index: INTX, start: 0, count: 1, action: 'unmask', data: 'none' } as const;

test('config space: 4348:3253, same subsystem, revision 0x10, class 0x070002, INTA#, an MSI capability', async () => {
  const { dev, file } = await card(1);
  assert.equal(await cfg(file, 0, 4), 0x32534348);
  assert.equal(await cfg(file, PCI_HEADER.SUBSYSTEM_VENDOR_ID, 4), 0x32534348);
  assert.equal(await cfg(file, PCI_HEADER.REVISION_ID, 4), 0x07000210, 'revision 0x10, prog-if 02, subclass 00, class 07');
  assert.equal(await cfg(file, PCI_HEADER.HEADER_TYPE, 1), 0);
  assert.equal(await cfg(file, PCI_HEADER.INTERRUPT_PIN, 1), 1);
  assert.ok((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.CAP_LIST);
  const cap = await cfg(file, PCI_HEADER.CAPABILITY_LIST, 1);
  assert.equal(await cfg(file, cap, 1), PCI_CAP_ID.MSI);
  assert.equal(await cfg(file, cap + 1, 1), 0, 'the only capability');
  const flags = await cfg(file, cap + 2, 2);
  assert.equal(flags & PCI_MSI_FLAGS.QMASK, 0, 'one vector');
  assert.ok(flags & PCI_MSI_FLAGS.ADDR64 && flags & PCI_MSI_FLAGS.MASKBIT);
  assert.equal((await file.getRegionInfo(PciRegion.CONFIG)).size, 256);
  await done(dev, file);
});

for (const ports of [1, 2] as const) {
  test(`mtty-${ports}: ${ports} eight-byte I/O BAR(s), nothing else`, async () => {
    const { dev, file } = await card(ports);
    const rw = RegionFlags.READ | RegionFlags.WRITE;
    for (let bar = 0; bar < 6; bar++) {
      const present = bar < ports;
      assert.deepEqual(await file.getRegionInfo(bar), { index: bar, flags: present ? rw : 0, size: present ? 8 : 0 }, `BAR${bar}`);
      await setCfg(file, PCI_HEADER.BASE_ADDRESS_0 + 4 * bar, 4, 0xffffffff);
      assert.equal(await cfg(file, PCI_HEADER.BASE_ADDRESS_0 + 4 * bar, 4), present ? 0xfffffff9 : 0, `BAR${bar} sizing`);
    }
    for (const r of [PciRegion.ROM, PciRegion.VGA]) assert.equal((await file.getRegionInfo(r)).size, 0);
    assert.throws(() => file.regionRead(ports, 0, new Uint8Array(1)), isCode('EINVAL'), 'no port behind the next BAR');
    assert.throws(() => file.regionRead(0, 7, new Uint8Array(2)), isCode('EINVAL'), 'past the 8 registers');
    // Memory decode is hardwired off: the card has no memory BAR.
    await setCfg(file, PCI_HEADER.COMMAND, 2, 0xffff);
    assert.equal(await cfg(file, PCI_HEADER.COMMAND, 2), PCI_COMMAND.IO | PCI_COMMAND.MASTER | PCI_COMMAND.INTX_DISABLE);
    assert.equal(dev.ports, ports);
    await done(dev, file);
  });
}

test('each port loops its own bytes back', async () => {
  const { dev, file } = await card(2);
  for (const port of [0, 1]) await setReg(file, port, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await send(file, 0, 'port one');
  await send(file, 1, 'two');
  assert.equal(await drain(file, 1), 'two');
  assert.equal(await drain(file, 0), 'port one');
  assert.equal(await reg(file, 0, UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
  await done(dev, file);
});

test('a wide access is one register access per byte, in address order', async () => {
  const { dev, file } = await card(1);
  // LCR with DLAB, then a 2-byte write of the divisor latch.
  await setReg(file, 0, UART_REG.LCR, UART_LCR.DLAB);
  await file.regionWrite(0, UART_REG.DLL, Uint8Array.of(0x01, 0x02));
  assert.deepEqual(await readBytes(file, 0, UART_REG.DLL, 2), [0x01, 0x02]);
  await setReg(file, 0, UART_REG.LCR, 0x03);
  // SCR and LSR/MSR in one 4-byte read from MCR.
  await setReg(file, 0, UART_REG.SCR, 0x5a);
  const [mcr, lsr, , scr] = await readBytes(file, 0, UART_REG.MCR, 4);
  assert.equal(mcr, 0);
  assert.equal(lsr, UART_LSR.THRE | UART_LSR.TEMT);
  assert.equal(scr, 0x5a);
  await done(dev, file);
});

test('INTx: a received byte signals, automasked until UNMASK; reading it drops the line', async () => {
  const { dev, file } = await card(1);
  const n = new FakeNotifier();
  await file.setIrqs(attach(INTX, n));
  await setReg(file, 0, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await setReg(file, 0, UART_REG.IER, UART_IER.RDI);
  assert.equal(n.count, 0);
  await send(file, 0, 'a');
  assert.equal(n.count, 1);
  assert.ok((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.INTERRUPT);
  assert.equal((await reg(file, 0, UART_REG.IIR)) & UART_IIR.ID, UART_IIR.RDI);
  await send(file, 0, 'b');
  assert.equal(n.count, 1, 'automasked');
  await file.setIrqs(unmask);
  assert.equal(n.count, 2, 'still pending at unmask: signalled again');
  assert.equal(await drain(file, 0), 'ab');
  assert.equal(dev.irqs.level, false);
  assert.equal((await cfg(file, PCI_HEADER.STATUS, 2)) & PCI_STATUS.INTERRUPT, 0);
  await file.setIrqs(unmask);
  assert.equal(n.count, 2, 'nothing pending');
  await send(file, 0, 'c');
  assert.equal(n.count, 3);
  await done(dev, file);
});

test('the two ports share the card interrupt: the line is high while either asserts', async () => {
  const { dev, file } = await card(2);
  const n = new FakeNotifier();
  await file.setIrqs(attach(INTX, n));
  for (const port of [0, 1]) await setReg(file, port, UART_REG.IER, UART_IER.RDI);
  await send(file, 0, 'x');
  await send(file, 1, 'y');
  assert.equal(n.count, 1);
  assert.equal(await drain(file, 0), 'x');
  assert.equal(dev.irqs.level, true, 'port 2 still asserts');
  await file.setIrqs(unmask);
  assert.equal(n.count, 2);
  assert.equal(await drain(file, 1), 'y');
  assert.equal(dev.irqs.level, false);
  await done(dev, file);
});

test('MSI: attaching enables it; each rising edge of the card interrupt sends the vector', async () => {
  const { dev, file } = await card(2);
  const n = new FakeNotifier();
  await file.setIrqs(attach(MSI, n));
  assert.equal(dev.irqs.mode, 'msi');
  await setReg(file, 0, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await setReg(file, 0, UART_REG.IER, UART_IER.RDI);
  await setReg(file, 1, UART_REG.IER, UART_IER.THRI);
  assert.equal(n.count, 1, 'THRI on an empty transmitter is an edge');
  assert.equal((await reg(file, 1, UART_REG.IIR)) & UART_IIR.ID, UART_IIR.THRI, 'reading IIR acknowledges it');
  await send(file, 0, 'a');
  assert.equal(n.count, 2);
  await send(file, 0, 'b');
  assert.equal(n.count, 2, 'the line stayed high: no new edge');
  assert.equal(await drain(file, 0), 'ab');
  await send(file, 0, 'c');
  assert.equal(n.count, 3);
  // Masked in config space: held pending, sent on unmask.
  const maskAt = dev.msi!.offset + 0x10;
  await drain(file, 0);
  await setCfg(file, maskAt, 4, 1);
  await send(file, 0, 'd');
  assert.equal(n.count, 3);
  await setCfg(file, maskAt, 4, 0);
  assert.equal(n.count, 4);
  await done(dev, file);
});

/** Plays the 8250 driver: every interrupt is serviced from IIR, then unmasked. */
async function interruptDrivenEcho(file: DeviceFile, port: number, message: string): Promise<{ received: string; irqs: number }> {
  const n = new FakeNotifier();
  await file.setIrqs(attach(INTX, n));
  await setReg(file, port, UART_REG.LCR, 0x03);
  await setReg(file, port, UART_REG.FCR, UART_FCR.ENABLE_FIFO | UART_FCR.CLEAR_RCVR | UART_FCR.CLEAR_XMIT);
  let tx = message;
  let received = '';
  let serviced = 0;
  await setReg(file, port, UART_REG.IER, UART_IER.RDI | UART_IER.THRI | UART_IER.RLSI);
  for (let guard = 0; serviced < n.count && guard < 10_000; guard++) {
    serviced++;
    for (;;) {
      const iir = await reg(file, port, UART_REG.IIR);
      if (iir & UART_IIR.NO_INT) break;
      const lsr = await reg(file, port, UART_REG.LSR);
      assert.equal(lsr & UART_LSR.OE, 0, 'never overrun');
      if (lsr & UART_LSR.DR) received += await drain(file, port);
      if ((iir & UART_IIR.ID) === UART_IIR.THRI) {
        // THRE: fill the FIFO, or stop asking for THRE when there is nothing left.
        if (tx.length === 0) await setReg(file, port, UART_REG.IER, UART_IER.RDI | UART_IER.RLSI);
        const chunk = tx.slice(0, 16);
        tx = tx.slice(16);
        await send(file, port, chunk);
      }
    }
    await file.setIrqs(unmask);
  }
  return { received, irqs: n.count };
}

test('an interrupt-driven writer and reader, as the 8250 driver is, gets every byte back', async () => {
  const { dev, file } = await card(2);
  const message = Array.from({ length: 200 }, (_, i) => String.fromCharCode(0x20 + (i % 90))).join('');
  const { received, irqs } = await interruptDrivenEcho(file, 1, message);
  assert.equal(received, message);
  assert.ok(irqs >= 1);
  assert.equal(dev.irqs.level, false, 'all serviced');
  await done(dev, file);
});

test('state survives a client reconnect: bytes and registers stay, the interrupt wiring goes', async () => {
  const { dev, file } = await card(2);
  const n = new FakeNotifier();
  await file.setIrqs(attach(MSI, n));
  await setReg(file, 1, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await setReg(file, 1, UART_REG.LCR, 0x1b);
  await setReg(file, 1, UART_REG.SCR, 0x77);
  await setReg(file, 1, UART_REG.IER, UART_IER.RDI);
  await send(file, 1, 'kept');
  await setCfg(file, PCI_HEADER.INTERRUPT_LINE, 1, 10);
  await file.close();
  assert.equal(n.closed, true, 'the eventfd is let go');
  assert.equal(dev.irqs.mode, 'intx', 'MSI is off for the next client');

  const again = await bind(dev);
  assert.equal(await reg(again, 1, UART_REG.LCR), 0x1b);
  assert.equal(await reg(again, 1, UART_REG.SCR), 0x77);
  assert.equal(await reg(again, 1, UART_REG.IER), UART_IER.RDI);
  assert.equal(await cfg(again, PCI_HEADER.INTERRUPT_LINE, 1), 10);
  // The byte that waited raises INTx for the new client at once.
  const intx = new FakeNotifier();
  await again.setIrqs(attach(INTX, intx));
  assert.equal(intx.count, 1);
  assert.equal(await drain(again, 1), 'kept');
  await done(dev, again);
});

test('reset puts both UARTs and config space back to power-on', async () => {
  const { dev, file } = await card(2);
  const n = new FakeNotifier();
  await file.setIrqs(attach(INTX, n));
  await setCfg(file, PCI_HEADER.COMMAND, 2, PCI_COMMAND.IO);
  for (const port of [0, 1]) {
    await setReg(file, port, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
    await setReg(file, port, UART_REG.IER, UART_IER.RDI);
    await setReg(file, port, UART_REG.SCR, 0x42);
    await send(file, port, 'gone');
  }
  assert.equal(dev.irqs.level, true);
  await file.reset();
  assert.equal(dev.irqs.level, false);
  assert.equal(await cfg(file, PCI_HEADER.COMMAND, 2), 0);
  for (const port of [0, 1]) {
    assert.equal(await reg(file, port, UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT, 'FIFO empty');
    assert.equal(await reg(file, port, UART_REG.IER), 0);
    assert.equal(await reg(file, port, UART_REG.SCR), 0);
    assert.equal(await reg(file, port, UART_REG.IIR), UART_IIR.NO_INT, 'FIFOs off');
  }
  // The client's INTx trigger is still attached.
  await setReg(file, 0, UART_REG.IER, UART_IER.THRI);
  await file.setIrqs(unmask);
  assert.equal(n.count, 2, 'THRE after the reset is signalled through the same trigger');
  await done(dev, file);
});

test('reset sends no interrupt while the ports go back to power-on one by one', async () => {
  const { dev, file } = await card(2);
  const n = new FakeNotifier();
  await file.setIrqs(attach(MSI, n));
  for (const port of [0, 1]) {
    await setReg(file, port, UART_REG.IER, UART_IER.RDI);
    await send(file, port, 'x');
  }
  assert.equal(n.count, 1, 'one edge: the line went high once');
  await file.reset();
  assert.equal(dev.irqs.level, false);
  assert.equal(n.count, 1, 'no edge from port 2 still asserting after port 1 was reset');
  await done(dev, file);
});

test('a card has 1 or 2 ports; release is reported once', async () => {
  const core = new VfioCore();
  assert.throws(() => new MttyDevice({ name: 'x', core, ports: 3 as MttyPortCount }), isCode('EINVAL'));
  let released = 0;
  const dev = new MttyDevice({ name: 'y', core, ports: 1, onRelease: () => released++ });
  dev.register();
  await dev.unregister();
  assert.equal(released, 1);
  dev.release();
  assert.equal(released, 1);
});
