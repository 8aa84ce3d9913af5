/**
 * mtty migration v2, between two cards through the core (what a client does
 * over MIG_DATA, in process): a save → load round trip compared field by
 * field (every UART register, divisor, FIFO and trigger level, config
 * space), PRE_COPY, interrupts held while stopped and raised after resume,
 * and every bad stream refused with its errno while the destination stays
 * as it was and takes a good stream afterwards.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FieldWriter,
  MigState,
  MigStreamWriter,
  PciIrq,
  PciRegion,
  VfioCore,
  VfioError,
  type DeviceFile,
  type EventNotifier,
} from '../../src/core/index.js';
import { createMttyDevice, MTTY_STREAM, type MttyDevice, type MttyPortCount } from '../../src/drivers/mtty/mtty-device.js';
import { UART_FCR, UART_IER, UART_LCR, UART_MCR, UART_REG } from '../../src/drivers/mtty/uart.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { PCI_COMMAND, PCI_HEADER } from '../../src/pci/index.js';
import { filePeer, migrate } from '../../src/vfio-user/index.js';
import { FakeNotifier } from '../pci/fake-notifier.js';

const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;
const core = new VfioCore();
let serial = 0;

async function card(ports: MttyPortCount): Promise<{ dev: MttyDevice; file: DeviceFile }> {
  const dev = createMttyDevice({ name: `mtty-mig-${serial++}`, core, ports });
  dev.register();
  const file = dev.openFile();
  await file.bindIommufd(new IommufdContext());
  return { dev, file };
}

const setReg = (f: DeviceFile, port: number, offset: number, value: number) => f.regionWrite(port, offset, Uint8Array.of(value));
async function reg(f: DeviceFile, port: number, offset: number): Promise<number> {
  const b = new Uint8Array(1);
  await f.regionRead(port, offset, b);
  return b[0]!;
}
async function config(f: DeviceFile): Promise<Uint8Array> {
  const b = new Uint8Array(256);
  await f.regionRead(PciRegion.CONFIG, 0, b);
  return b;
}
function attach(index: number, n: EventNotifier): Parameters<DeviceFile['setIrqs']>[0] {
  return { index, start: 0, count: 1, action: 'trigger', data: 'eventfd', values: [n] };
}

/** Puts port `p` in a state far from power-on: divisor, FIFO with trigger 8, bytes waiting, registers. */
async function program(f: DeviceFile, p: number, text: string): Promise<void> {
  await setReg(f, p, UART_REG.LCR, UART_LCR.DLAB);
  await setReg(f, p, UART_REG.DLL, 0x34 + p);
  await setReg(f, p, UART_REG.DLM, 0x12);
  await setReg(f, p, UART_REG.LCR, 0x1b);
  await setReg(f, p, UART_REG.FCR, UART_FCR.ENABLE_FIFO | 0x80); // trigger level 8
  await setReg(f, p, UART_REG.MCR, UART_MCR.DTR | UART_MCR.OUT2);
  await setReg(f, p, UART_REG.SCR, 0x5a + p);
  for (const ch of text) await setReg(f, p, UART_REG.TX, ch.charCodeAt(0));
  await setReg(f, p, UART_REG.IER, UART_IER.RDI | UART_IER.MSI);
}

/** The saving side's whole stream, by hand (STOP_COPY only). */
async function saveStream(f: DeviceFile): Promise<Uint8Array> {
  await f.setMigrationState(MigState.STOP_COPY);
  const parts: number[] = [];
  for (let chunk = await f.migrationDataRead(4096); ; chunk = await f.migrationDataRead(4096)) {
    parts.push(...chunk);
    if (chunk.length < 4096) break;
  }
  await f.setMigrationState(MigState.RUNNING);
  return Uint8Array.from(parts);
}

/** Offers `stream` to a resuming card: resolves, or rejects with the load's errno. */
async function load(f: DeviceFile, stream: Uint8Array): Promise<void> {
  if ((await f.migrationState()) !== MigState.RESUMING) await f.setMigrationState(MigState.RESUMING);
  if (stream.length > 0) await f.migrationDataWrite(stream);
  await f.setMigrationState(MigState.RUNNING);
}

describe('mtty migration', () => {
  it('declares STOP_COPY, P2P and PRE_COPY, as the kernel sample does', async () => {
    const { file } = await card(1);
    assert.equal(await file.migrationFlags(), 0b111);
  });

  it('round trip: every UART field and config space arrive as they left', async () => {
    const src = await card(2);
    const dst = await card(2);
    await program(src.file, 0, 'hello');
    await program(src.file, 1, 'abc');
    await setReg(src.file, 1, UART_REG.LCR, UART_LCR.DLAB | 0x03); // port 1 left with DLAB set
    await src.file.regionWrite(PciRegion.CONFIG, PCI_HEADER.COMMAND, Uint8Array.of(PCI_COMMAND.IO | PCI_COMMAND.MASTER, 0));
    await src.file.regionWrite(PciRegion.CONFIG, PCI_HEADER.INTERRUPT_LINE, Uint8Array.of(11));
    const before = src.dev.uarts.map((u) => u.saveState());
    const cfgBefore = await config(src.file);
    const stats = await migrate(filePeer(src.file), filePeer(dst.file), { precopyRounds: 0 });
    assert.equal(stats.precopyBytes, 0);
    assert.deepEqual(
      dst.dev.uarts.map((u) => u.saveState()),
      before,
    );
    assert.deepEqual(await config(dst.file), cfgBefore);
    // The bytes come out of the destination, in order, through its registers.
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(String.fromCharCode(await reg(dst.file, 0, UART_REG.RX)));
    assert.equal(got.join(''), 'hello');
    assert.equal(await src.file.migrationState(), MigState.STOP);
    assert.equal(await dst.file.migrationState(), MigState.RUNNING);
  });

  it('PRE_COPY sends the header while the card runs, the registers once it stops', async () => {
    const src = await card(1);
    const dst = await card(1);
    await program(src.file, 0, 'xyz');
    await src.file.setMigrationState(MigState.PRE_COPY);
    const info = await src.file.migrationPrecopyInfo();
    assert.ok(info.initialBytes > 0 && info.initialBytes < 40, `initial bytes ${info.initialBytes}: the header only`);
    await setReg(src.file, 0, UART_REG.TX, 'w'.charCodeAt(0)); // the card still runs in PRE_COPY
    await src.file.setMigrationState(MigState.RUNNING);
    const stats = await migrate(filePeer(src.file), filePeer(dst.file), { precopyRounds: 1 });
    assert.equal(stats.precopyRounds, 1);
    assert.ok(stats.precopyBytes > 0 && stats.stopCopyBytes > stats.precopyBytes);
    assert.deepEqual(
      [...dst.dev.uarts[0]!.saveState().fifo],
      [...'xyzw'].map((c) => c.charCodeAt(0)),
    );
  });

  it('a stopped card raises no interrupt; a pending one is raised after resume, on the destination too', async () => {
    const src = await card(1);
    const dst = await card(1);
    const n = new FakeNotifier();
    await src.file.setIrqs(attach(PciIrq.INTX, n));
    await src.file.setMigrationState(MigState.STOP);
    await setReg(src.file, 0, UART_REG.TX, 0x41);
    await setReg(src.file, 0, UART_REG.IER, UART_IER.RDI); // data waiting + RDI: asserted
    assert.equal(n.count, 0, 'held while stopped');
    await src.file.setMigrationState(MigState.RUNNING);
    assert.equal(n.count, 1, 'raised on resume');
    const m = new FakeNotifier();
    await dst.file.setIrqs(attach(PciIrq.INTX, m));
    await src.file.setMigrationState(MigState.STOP_COPY);
    const stream: number[] = [];
    for (let c = await src.file.migrationDataRead(4096); c.length > 0; c = await src.file.migrationDataRead(4096)) stream.push(...c);
    await dst.file.setMigrationState(MigState.RESUMING);
    await dst.file.migrationDataWrite(Uint8Array.from(stream));
    await dst.file.setMigrationState(MigState.STOP);
    assert.equal(m.count, 0, 'the loaded card is still stopped');
    await dst.file.setMigrationState(MigState.RUNNING);
    assert.equal(m.count, 1, 'the pending interrupt of the loaded state');
    assert.equal(await reg(dst.file, 0, UART_REG.RX), 0x41);
  });

  it('under MSI, the loaded edge is sent once the card runs, not before', async () => {
    const src = await card(1);
    const dst = await card(1);
    const ns = new FakeNotifier();
    await src.file.setIrqs(attach(PciIrq.MSI, ns)); // enables MSI in the source's config space
    await program(src.file, 0, 'q');
    assert.equal(ns.count, 1, 'the source signalled its edge');
    const stream = await saveStream(src.file);
    const m = new FakeNotifier();
    await dst.file.setIrqs(attach(PciIrq.MSI, m));
    await dst.file.setMigrationState(MigState.RESUMING);
    await dst.file.migrationDataWrite(stream);
    await dst.file.setMigrationState(MigState.STOP);
    assert.equal(m.count, 0, 'held while stopped');
    await dst.file.setMigrationState(MigState.RUNNING);
    assert.equal(m.count, 1, 'the loaded edge, once');
  });

  const refusals: Array<[string, (good: Uint8Array) => Uint8Array, string]> = [
    ['corrupt (a FIFO byte flipped)', (g) => flip(g, g.length - 30), 'EBADMSG'],
    ['corrupt (not a stream)', () => new TextEncoder().encode('definitely not a migration stream'), 'EBADMSG'],
    ['truncated', (g) => g.subarray(0, g.length - 5), 'ENODATA'],
    ['empty', () => new Uint8Array(0), 'ENODATA'],
    ['of another version', () => foreign({ major: MTTY_STREAM.MAJOR + 1 }), 'EPROTO'],
    ['of a newer minor', () => foreign({ minor: MTTY_STREAM.MINOR + 1 }), 'EPROTO'],
    ['of mtty-2 into mtty-1', () => foreign({ ports: 2 }), 'EINVAL'],
    ['of another kind of device', () => foreign({ kind: 'mdpy' }), 'EINVAL'],
  ];
  for (const [what, make, code] of refusals) {
    it(`refuses a stream ${what} with ${code}; the destination is unchanged and takes a good stream next`, async () => {
      const src = await card(1);
      const dst = await card(1);
      await program(src.file, 0, 'ok');
      await program(dst.file, 0, 'mine');
      const good = await saveStream(src.file);
      const dstBefore = dst.dev.uarts[0]!.saveState();
      const cfgBefore = await config(dst.file);
      await assert.rejects(load(dst.file, make(good)), isCode(code));
      assert.equal(await dst.file.migrationState(), MigState.RESUMING);
      assert.deepEqual(dst.dev.uarts[0]!.saveState(), dstBefore, 'the UART did not change');
      assert.deepEqual(await config(dst.file), cfgBefore, 'config space did not change');
      await load(dst.file, good);
      assert.deepEqual(dst.dev.uarts[0]!.saveState(), src.dev.uarts[0]!.saveState());
      assert.equal(await reg(dst.file, 0, UART_REG.SCR), 0x5a);
    });
  }

  it('refuses a config space of another function (read-only bits differ) with EINVAL', async () => {
    const src = await card(1);
    const dst = await card(1);
    const good = await saveStream(src.file);
    // The stream rebuilt with the vendor ID changed: checksums right, identity wrong.
    const tampered = restamp(good, (cfg) => {
      cfg[0] = 0x86;
    });
    await assert.rejects(load(dst.file, tampered), isCode('EINVAL'));
  });

  it('refuses a UART state that cannot be (a FIFO deeper than 16, a bad trigger level) with EBADMSG', async () => {
    const dst = await card(1);
    for (const uart of [
      { fifoCount: 17, trigger: 1 },
      { fifoCount: 2, trigger: 3 },
    ]) {
      const f = new FieldWriter()
        .u8(1)
        .u8(uart.fifoCount)
        .bytes(new Uint8Array(16))
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u16(12)
        .u8(1)
        .u8(uart.trigger)
        .u8(0xb0)
        .u8(0);
      const stream = new MigStreamWriter()
        .begin({ kind: 'mtty', major: MTTY_STREAM.MAJOR, minor: MTTY_STREAM.MINOR, params: new FieldWriter().u32(1).take() })
        .record(2, pciRecordOf(dst.dev))
        .record(MTTY_STREAM.UARTS, f.take())
        .end()
        .take();
      await assert.rejects(load(dst.file, stream), isCode('EBADMSG'));
    }
  });
});

function flip(b: Uint8Array, at: number): Uint8Array {
  const c = b.slice();
  c[at]! ^= 0x01;
  return c;
}

/** A well-formed stream whose header says otherwise. */
function foreign(o: { kind?: string; major?: number; minor?: number; ports?: number }): Uint8Array {
  return new MigStreamWriter()
    .begin({
      kind: o.kind ?? 'mtty',
      major: o.major ?? MTTY_STREAM.MAJOR,
      minor: o.minor ?? MTTY_STREAM.MINOR,
      params: new FieldWriter().u32(o.ports ?? 1).take(),
    })
    .end()
    .take();
}

/** The PCI function record a card would save (its config space, no MSI-X). */
function pciRecordOf(dev: MttyDevice): Uint8Array {
  const cfg = dev.config.saveState();
  return new FieldWriter().u32(cfg.length).bytes(cfg).u32(0).take();
}

/** The stream with its PCI record's config space changed by `edit` (checksums recomputed). */
function restamp(stream: Uint8Array, edit: (cfg: Uint8Array) => void): Uint8Array {
  // Walk the records: magic, then tag|len|payload|crc.
  let at = 8;
  const w = new MigStreamWriter();
  let header: Uint8Array | null = null;
  const records: Array<[number, Uint8Array]> = [];
  const view = new DataView(stream.buffer, stream.byteOffset);
  while (at < stream.length) {
    const tag = view.getUint16(at, true);
    const len = view.getUint32(at + 4, true);
    const payload = stream.slice(at + 8, at + 8 + len);
    at += 8 + len + 4;
    if (tag === 1) header = payload;
    else if (tag !== 0xffff) records.push([tag, payload]);
  }
  assert.ok(header);
  const params = header.subarray(4 + 1 + header[4]!);
  w.begin({ kind: 'mtty', major: MTTY_STREAM.MAJOR, minor: MTTY_STREAM.MINOR, params });
  for (const [tag, payload] of records) {
    if (tag === 2) edit(payload.subarray(4, 4 + 256));
    w.record(tag, payload);
  }
  return w.end().take();
}
