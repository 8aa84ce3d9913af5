/**
 * A device handed from one daemon to the next, in process (what a takeover
 * does across two): the stream made in `handover` mode leaves shared BAR
 * memory out and carries the client's interrupt wiring; the new device
 * adopts the same memory (clients have it mapped) and the same eventfds,
 * without the side effects SET_IRQS has. Checked: the picture stays where
 * the guest drew it, an INTx waiting for its unmask is not sent again, a
 * signal held while stopped is sent once, and nothing is signalled before
 * the new device runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigState, PciIrq, PciRegion, type DeviceFile, type EventNotifier } from '../../src/core/index.js';
import { MbochsDevice } from '../../src/drivers/mbochs/mbochs-device.js';
import { MdpyDevice } from '../../src/drivers/mdpy/mdpy-device.js';
import { createMttyDevice, type MttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { UART_IER, UART_MCR, UART_REG } from '../../src/drivers/mtty/uart.js';
import { close, dup, MappedMemory, memfdCreate, openFdCount, sealSize } from '../../src/native/index.js';
import type { VfioPciDevice } from '../../src/pci/pci-device.js';
import { FakeNotifier } from '../pci/fake-notifier.js';
import { fastCore, isCode, registerAndBind } from './display-device-helpers.js';

const MIB = 1 << 20;
const core = fastCore();
let serial = 0;

/** The handing-over side: `handover` on, stopped, the whole stream read. The device stays stopped, as the old daemon leaves it. */
async function save(dev: VfioPciDevice, f: DeviceFile): Promise<Uint8Array> {
  dev.handover = true;
  await f.setMigrationState(MigState.STOP_COPY);
  const parts: Uint8Array[] = [];
  for (let c = await f.migrationDataRead(MIB); ; c = await f.migrationDataRead(MIB)) {
    parts.push(c);
    if (c.length < MIB) break;
  }
  return Buffer.concat(parts);
}

/** The taking-over side up to the commit point: loaded and stopped. */
async function load(dev: VfioPciDevice, f: DeviceFile, stream: Uint8Array): Promise<void> {
  dev.handover = true;
  await f.setMigrationState(MigState.RESUMING);
  await f.migrationDataWrite(stream);
  await f.setMigrationState(MigState.STOP);
  dev.handover = false;
}

const trigger = (index: number, n: EventNotifier) => ({
  index,
  start: 0,
  count: 1,
  action: 'trigger' as const,
  data: 'eventfd' as const,
  values: [n],
});
const setReg = (f: DeviceFile, port: number, offset: number, value: number) => f.regionWrite(port, offset, Uint8Array.of(value));

async function mtty(): Promise<{ dev: MttyDevice; file: DeviceFile }> {
  const dev = createMttyDevice({ name: `mtty-takeover-${serial++}`, core, ports: 1 });
  return { dev, file: await registerAndBind(dev) };
}

describe('a device handed over', () => {
  it('mbochs: the stream leaves video memory out; the new adapter adopts the same memory and shows the same plane', async () => {
    const src = new MbochsDevice({ name: `mbochs-takeover-${serial++}`, core, memoryBytes: 4 * MIB, maxWidth: 800, maxHeight: 600 });
    const sf = await registerAndBind(src);
    for (const [index, value] of [
      [1, 640],
      [2, 480],
      [3, 32],
      [4, 0x41],
    ] as const) {
      await sf.regionWrite(2, 0x500 + 2 * index, Uint8Array.of(value & 0xff, value >> 8));
    }
    for (let i = 0; i < src.framebuffer.length; i += 4093) src.framebuffer[i] = (i * 13) & 0xff;
    const picture = Buffer.from(src.framebuffer);
    const stream = await save(src, sf);
    assert.ok(stream.length < 64 * 1024, `no video memory in a takeover's stream (${stream.length} bytes)`);

    const memory = MappedMemory.adopt(dup(src.barMemory(0)!.fd), 4 * MIB);
    const dst = new MbochsDevice({
      name: `mbochs-takeover-${serial++}`,
      core,
      memoryBytes: 4 * MIB,
      maxWidth: 800,
      maxHeight: 600,
      barMemory: [memory],
    });
    const df = await registerAndBind(dst);
    await load(dst, df, stream);
    await df.setMigrationState(MigState.RUNNING);
    assert.ok(Buffer.from(dst.framebuffer).equals(picture), 'the picture, as the guest drew it');
    assert.deepEqual(dst.queryPlane(), src.queryPlane());
    src.framebuffer[4096] = 0xa5; // a guest writing through its mapping meanwhile
    assert.equal(dst.framebuffer[4096], 0xa5, 'the same memory, not a copy');
    const info = await df.getRegionInfo(PciRegion.BAR0);
    assert.equal(info.mmap?.fd, memory.fd, 'clients are offered the adopted memory');
    await sf.close();
    await df.close();
  });

  it('mdpy: the adopted framebuffer is not repainted at construction', async () => {
    const src = new MdpyDevice({ name: `mdpy-takeover-${serial++}`, core, width: 64, height: 32 });
    const sf = await registerAndBind(src);
    src.framebuffer.fill(0x3c);
    const stream = await save(src, sf);
    const size = src.framebuffer.length;
    assert.ok(stream.length < size, 'no framebuffer in the stream');
    const dst = new MdpyDevice({
      name: `mdpy-takeover-${serial++}`,
      core,
      width: 64,
      height: 32,
      barMemory: [MappedMemory.adopt(dup(src.barMemory(0)!.fd), size)],
    });
    const df = await registerAndBind(dst);
    await load(dst, df, stream);
    assert.ok(
      dst.framebuffer.every((b) => b === 0x3c),
      'no grey ramp over the guest picture',
    );
    await sf.close();
    await df.close();
  });

  it('mtty under INTx: the eventfd is adopted; an INTx waiting for its unmask is not sent again, the unmask sends it', async () => {
    const src = await mtty();
    const old = new FakeNotifier();
    await src.file.setIrqs(trigger(PciIrq.INTX, old));
    await setReg(src.file, 0, UART_REG.MCR, UART_MCR.OUT2);
    await setReg(src.file, 0, UART_REG.IER, UART_IER.RDI);
    await setReg(src.file, 0, UART_REG.TX, 0x41); // loops back: data ready, the line goes up
    assert.equal(old.count, 1, 'INTx sent, and automasked');
    const stream = await save(src.dev, src.file);

    const dst = await mtty();
    const adopted = new FakeNotifier(); // the same eventfd, received by the new daemon
    await load(dst.dev, dst.file, stream);
    await dst.file.adoptIrqs(trigger(PciIrq.INTX, adopted));
    assert.equal(adopted.count, 0, 'nothing is signalled before the device runs');
    await dst.file.setMigrationState(MigState.RUNNING);
    assert.equal(adopted.count, 0, 'still masked: the guest has not acknowledged the first one');
    await dst.file.setIrqs({ index: PciIrq.INTX, start: 0, count: 1, action: 'unmask', data: 'none' });
    assert.equal(adopted.count, 1, 'the line is still up: unmasking sends it');
    assert.equal(old.count, 1, 'the old device sends nothing more');
    const rx = new Uint8Array(1);
    await dst.file.regionRead(PciRegion.BAR0, UART_REG.RX, rx);
    assert.equal(rx[0], 0x41, 'the byte moved with the UART');
    await src.file.close();
    await dst.file.close();
  });

  it('mtty under MSI: adopting changes no enable, a signal held while stopped is sent once when the new device runs', async () => {
    const src = await mtty();
    await src.file.setIrqs(trigger(PciIrq.MSI, new FakeNotifier())); // enables MSI in config space
    await setReg(src.file, 0, UART_REG.MCR, UART_MCR.OUT2);
    await setReg(src.file, 0, UART_REG.IER, UART_IER.RDI);
    await src.file.setMigrationState(MigState.STOP);
    await setReg(src.file, 0, UART_REG.TX, 0x42); // raised while stopped: held
    const stream = await save(src.dev, src.file);

    const dst = await mtty();
    const configBefore = new Uint8Array(256);
    await load(dst.dev, dst.file, stream);
    await dst.file.regionRead(PciRegion.CONFIG, 0, configBefore);
    const adopted = new FakeNotifier();
    await dst.file.adoptIrqs(trigger(PciIrq.MSI, adopted));
    const configAfter = new Uint8Array(256);
    await dst.file.regionRead(PciRegion.CONFIG, 0, configAfter);
    assert.deepEqual(configAfter, configBefore, 'adopting a trigger writes nothing to config space');
    assert.equal(dst.dev.irqs.mode, 'msi', 'MSI came enabled with the stream');
    assert.equal(adopted.count, 0);
    await dst.file.setMigrationState(MigState.RUNNING);
    assert.equal(adopted.count, 1, 'the held MSI, once');
    await src.file.close();
    await dst.file.close();
  });

  it('a takeover stream without the wiring record is refused (EBADMSG); a second kind of trigger cannot be adopted (EINVAL)', async () => {
    const src = await mtty();
    await src.file.setMigrationState(MigState.STOP_COPY);
    const plain = await src.file.migrationDataRead(MIB);
    const dst = await mtty();
    dst.dev.handover = true;
    await dst.file.setMigrationState(MigState.RESUMING);
    await dst.file.migrationDataWrite(plain);
    await assert.rejects(Promise.resolve(dst.file.setMigrationState(MigState.STOP)), isCode('EBADMSG'));
    dst.dev.handover = false;
    await dst.file.adoptIrqs(trigger(PciIrq.INTX, new FakeNotifier()));
    await assert.rejects(async () => dst.file.adoptIrqs(trigger(PciIrq.MSI, new FakeNotifier())), isCode('EINVAL'));
    await src.file.close();
    await dst.file.close();
  });

  it('MappedMemory.adopt takes only a size-sealed memfd of the right size, and closes what it refuses', () => {
    const before = openFdCount();
    const unsealed = memfdCreate('unsealed', 8192);
    assert.throws(() => MappedMemory.adopt(unsealed, 8192), isCode('EINVAL'));
    const sealed = memfdCreate('sealed', 8192);
    sealSize(sealed);
    assert.throws(() => MappedMemory.adopt(dup(sealed), 4096), isCode('EINVAL'));
    const m = MappedMemory.adopt(sealed, 8192);
    m.close();
    assert.equal(openFdCount(), before, 'every fd closed');
    assert.throws(() => close(unsealed), isCode('EBADF'));
  });
});
