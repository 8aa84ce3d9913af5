/**
 * mtty through real sockets: the vfio-user server and client library, the
 * way a VMM drives the card. Linux's 8250_pci uses INTx for this card, so
 * this is where MSI is proven.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceFlags, PciIrq, PciRegion, VfioCore, VfioError } from '../../src/core/index.js';
import { openFdCount } from '../../src/native/index.js';
import { PCI_HEADER, PCI_MSI_FLAGS, PCI_STATUS } from '../../src/pci/index.js';
import { VfioUserClient, VfioUserServer } from '../../src/vfio-user/index.js';
import { createMttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { UART_FCR, UART_IER, UART_IIR, UART_LSR, UART_REG } from '../../src/drivers/mtty/uart.js';
import { until } from '../support/until.js';

const { INTX, MSI, REQ } = PciIrq;
const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;

async function serve() {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-mtty-'));
  const core = new VfioCore({ requestBackoffMs: () => 20 });
  const server = new VfioUserServer({ core, socketDir: dir });
  const card = createMttyDevice({ name: 'mtty-2', core, ports: 2 });
  card.register();
  await server.serve(card);
  const connect = () => VfioUserClient.connect(server.socketPath(card.name)!);
  const close = async () => {
    await server.close();
    if (card.state === 'registered') await card.unregister();
    rmSync(dir, { recursive: true, force: true });
  };
  return { core, server, card, connect, close };
}

async function setReg(c: VfioUserClient, port: number, offset: number, value: number): Promise<void> {
  await c.regionWrite(port, offset, Uint8Array.of(value));
}

async function reg(c: VfioUserClient, port: number, offset: number): Promise<number> {
  return (await c.regionRead(port, offset, 1))[0]!;
}

async function send(c: VfioUserClient, port: number, text: string): Promise<void> {
  for (const ch of text) await setReg(c, port, UART_REG.TX, ch.charCodeAt(0));
}

async function drain(c: VfioUserClient, port: number): Promise<string> {
  let s = '';
  while ((await reg(c, port, UART_REG.LSR)) & UART_LSR.DR) s += String.fromCharCode(await reg(c, port, UART_REG.RX));
  return s;
}

test('over vfio-user: a PCI device with 9 regions and 5 irq indexes, two 8-byte I/O BARs', async () => {
  const s = await serve();
  const c = await s.connect();
  const info = await c.getDeviceInfo();
  assert.deepEqual([info.flags, info.numRegions, info.numIrqs], [DeviceFlags.PCI | DeviceFlags.RESET, 9, 5]);
  assert.deepEqual([(await c.getRegionInfo(0)).size, (await c.getRegionInfo(1)).size, (await c.getRegionInfo(2)).size], [8, 8, 0]);
  assert.equal((await c.getRegionInfo(PciRegion.CONFIG)).size, 256);
  const id = await c.regionRead(PciRegion.CONFIG, 0, 4);
  assert.deepEqual([...id], [0x48, 0x43, 0x53, 0x32]);
  assert.deepEqual([(await c.getIrqInfo(INTX)).count, (await c.getIrqInfo(MSI)).count], [1, 1]);
  await assert.rejects(c.regionRead(2, 0, 1), isCode('EINVAL'));
  c.close();
  await s.close();
});

test('MSI over eventfds: each port raises the vector when its received data interrupt goes up', async () => {
  const s = await serve();
  const c = await s.connect();
  const msi = await c.setIrqEventfds(MSI, 0, 1);
  const flags = await c.regionRead(PciRegion.CONFIG, s.card.msi!.offset + 2, 2);
  assert.ok(flags[0]! & PCI_MSI_FLAGS.ENABLE, 'SET_IRQS enabled MSI in config space');
  const line = msi.line(0);
  for (const port of [0, 1]) {
    await setReg(c, port, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
    await setReg(c, port, UART_REG.IER, UART_IER.RDI);
    const arrived = line.next(5000);
    await send(c, port, `msi ${port}`);
    assert.ok((await arrived) >= 1n, `port ${port} signalled`);
    assert.equal((await reg(c, port, UART_REG.IIR)) & UART_IIR.ID, UART_IIR.RDI);
    assert.equal(await drain(c, port), `msi ${port}`);
  }
  assert.equal(line.take(), 0n, 'nothing more while the line stayed high');
  c.close();
  await s.close();
});

test('INTx over eventfds: signalled, automasked, signalled again after UNMASK while pending', async () => {
  const s = await serve();
  const c = await s.connect();
  const intx = (await c.setIrqEventfds(INTX, 0, 1)).line(0);
  await setReg(c, 1, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await setReg(c, 1, UART_REG.IER, UART_IER.RDI);
  const first = intx.next(5000);
  await send(c, 1, 'ab');
  assert.equal(await first, 1n);
  const status = await c.regionRead(PciRegion.CONFIG, PCI_HEADER.STATUS, 1);
  assert.ok(status[0]! & PCI_STATUS.INTERRUPT, 'Interrupt Status');
  const second = intx.next(5000);
  await c.setIrqs(INTX, 0, 1, 'unmask', 'none');
  assert.equal(await second, 1n);
  assert.equal(await drain(c, 1), 'ab');
  await c.setIrqs(INTX, 0, 1, 'unmask', 'none');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(intx.take(), 0n);
  c.close();
  await s.close();
});

test('a reconnecting client finds the bytes it left; its eventfds were dropped', async () => {
  const s = await serve();
  const before = openFdCount();
  const c1 = await s.connect();
  await c1.setIrqEventfds(MSI, 0, 1);
  await setReg(c1, 0, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await send(c1, 0, 'left here');
  c1.close();
  await until(() => s.card.openCount === 0);
  assert.equal(s.card.irqs.mode, 'intx');
  const c2 = await s.connect();
  assert.equal(await drain(c2, 0), 'left here');
  c2.close();
  await until(() => s.card.openCount === 0);
  assert.equal(openFdCount(), before, 'no fd left behind');
  await s.close();
});

test('reset over vfio-user empties the FIFOs', async () => {
  const s = await serve();
  const c = await s.connect();
  await setReg(c, 1, UART_REG.FCR, UART_FCR.ENABLE_FIFO);
  await send(c, 1, 'xyz');
  await c.reset();
  assert.equal(await reg(c, 1, UART_REG.LSR), UART_LSR.THRE | UART_LSR.TEMT);
  c.close();
  await s.close();
});

test('removing the card asks the client to let go through REQ', async () => {
  const s = await serve();
  const c = await s.connect();
  const req = (await c.setIrqEventfds(REQ, 0, 1)).line(0);
  const asked = req.next(5000);
  const gone = s.card.unregister();
  assert.ok((await asked) >= 1n);
  c.close();
  await gone;
  await s.close();
});
