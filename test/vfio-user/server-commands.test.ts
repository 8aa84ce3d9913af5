/**
 * Every command, through the client library, against the server, through a
 * real UNIX socket. Each test also checks that no fd leaked on either side.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { isVfioError, type ErrnoName } from '../../src/base/errors.js';
import { DeviceFlags, Feature, IrqInfoFlags, MigState, PciIrq, PciRegion, RegionFlags } from '../../src/base/uapi.js';
import { closeFds, MappedMemory, openFdCount } from '../../src/native/index.js';
import { Command, decodeVersionReply, MESSAGE_CHANNEL, type VfioUserClient } from '../../src/vfio-user/index.js';
import { TestDevice } from '../support/test-device.js';
import { BAR0_SIZE, BAR2_SIZE, DRIVER_FEATURE } from './fixture-device.js';
import { perTestServer, QEMU_PROPOSAL, RawPeer, startServer, tick, withoutFdLeak, type Bench } from './server-harness.js';
import { until } from '../support/until.js';

const rejects = (code: ErrnoName) => (e: unknown) => isVfioError(e, code);
const bytes = (...v: number[]) => new Uint8Array(v);

let bench: Bench;
let client: VfioUserClient;

perTestServer(
  {},
  async (b) => {
    bench = b;
    client = await b.connect();
  },
  () => client.close(),
);

describe('VFIO_USER_VERSION', () => {
  it("answers QEMU 11.1's exact proposal with version 0.0 and only what it proposed", async () => {
    const peer = new RawPeer(bench.path());
    const reply = await peer.negotiate(QEMU_PROPOSAL, 0);
    const v = decodeVersionReply(reply.body, []);
    assert.deepEqual([v.major, v.minor], [0, 0]);
    const json = new TextDecoder().decode(reply.body.subarray(4, reply.body.length - 1));
    assert.deepEqual(JSON.parse(json), {
      capabilities: {
        max_msg_fds: 16,
        max_data_xfer_size: 1048576,
        max_dma_maps: 65535,
        pgsizes: 4096,
        write_multiple: true,
        migration: { pgsize: 4096, max_bitmap_size: 268435456 },
      },
    });
    assert.equal(reply.body[reply.body.length - 1], 0, 'NUL-terminated');
    peer.close();
  });

  it('binds on success: open_device runs once for two clients, close_device after both leave', async () => {
    assert.equal(bench.device.opens, 1);
    const second = await bench.connect();
    assert.equal(bench.device.opens, 1);
    assert.equal(bench.server.connectionCount(bench.device), 2);
    second.close();
    await until(() => bench.server.connectionCount(bench.device) === 1);
    assert.equal(bench.device.closes, 0);
    client.close();
    await until(() => bench.device.closes === 1);
  });

  it('a second VERSION is EINVAL and the session goes on', async () => {
    const r = await client.request(Command.VERSION, bytes(0, 0, 2, 0));
    assert.equal(r.errorNo, 22);
    assert.equal((await client.getDeviceInfo()).numRegions, 9);
  });
});

describe('device, region and IRQ info', () => {
  it('DEVICE_GET_INFO', async () => {
    assert.deepEqual(await client.getDeviceInfo(), { argsz: 16, flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: 9, numIrqs: 5 });
  });

  it('GET_REGION_INFO: argsz too small gets the bare struct and the argsz needed, no fd; the retry gets caps and the fd', async () => {
    const small = await client.getRegionInfo(PciRegion.BAR2, { argsz: 32 });
    assert.equal(small.argsz, 80);
    assert.equal(small.flags & RegionFlags.CAPS, 0);
    assert.equal(small.capOffset, 0);
    assert.equal(small.fd, null);
    assert.equal(small.sparseMmap, undefined);
    const full = await client.getRegionInfo(PciRegion.BAR2, { argsz: small.argsz });
    assert.equal(full.flags, RegionFlags.READ | RegionFlags.WRITE | RegionFlags.MMAP | RegionFlags.CAPS);
    assert.equal(full.capOffset, 32);
    assert.deepEqual(full.sparseMmap, [
      { offset: 0, size: 4096 },
      { offset: 8192, size: 8192 },
    ]);
    assert.equal(full.size, BAR2_SIZE);
    assert.notEqual(full.fd, null);
    closeFds([full.fd!]);
  });

  it('GET_REGION_INFO: two-pass by default; a type capability; plain regions have neither caps nor fd', async () => {
    const cfg = await client.getRegionInfo(PciRegion.CONFIG);
    assert.deepEqual(cfg.type, { type: 0x80000000, subtype: 7 });
    assert.equal(cfg.fd, null);
    const bar0 = await client.getRegionInfo(PciRegion.BAR0);
    assert.deepEqual([bar0.argsz, bar0.flags, bar0.size, bar0.fd], [32, RegionFlags.READ | RegionFlags.WRITE, BAR0_SIZE, null]);
    const none = await client.getRegionInfo(PciRegion.VGA);
    assert.equal(none.size, 0);
    await assert.rejects(client.getRegionInfo(9), rejects('EINVAL'));
  });

  it('mmap of sparse areas: the client sees the device memory and the device the client writes', async () => {
    const region = await client.mapRegion(PciRegion.BAR2);
    assert.deepEqual(
      region.areas.map((a) => [a.offset, a.size]),
      [
        [0, 4096],
        [8192, 8192],
      ],
    );
    bench.device.bar2.bytes[8200] = 0x5a;
    assert.equal(region.at(8200, 1)[0], 0x5a);
    region.at(10, 2).set([1, 2]);
    assert.deepEqual([...bench.device.bar2.bytes.subarray(10, 12)], [1, 2]);
    assert.throws(() => region.at(4096, 4), rejects('EFAULT'));
    region.unmap();
  });

  it('GET_REGION_IO_FDS: no sub-regions for a region, EINVAL for one not implemented', async () => {
    const r = await client.getRegionIoFds(PciRegion.BAR0);
    assert.deepEqual([r.argsz, r.count, r.subRegions.length, r.fds.length], [16, 0, 0, 0]);
    await assert.rejects(client.getRegionIoFds(PciRegion.BAR3), rejects('EINVAL'));
    await assert.rejects(client.getRegionIoFds(9), rejects('EINVAL'));
  });

  it('GET_IRQ_INFO for every index; EINVAL past the last', async () => {
    const counts = [];
    for (let i = 0; i < 5; i++) counts.push((await client.getIrqInfo(i)).count);
    assert.deepEqual(counts, [1, 4, 8, 1, 1]);
    assert.equal((await client.getIrqInfo(PciIrq.INTX)).flags & IrqInfoFlags.MASKABLE, IrqInfoFlags.MASKABLE);
    await assert.rejects(client.getIrqInfo(5), rejects('EINVAL'));
  });
});

describe('DEVICE_SET_IRQS', () => {
  it('eventfds: interrupts are delivered to the right line', async () => {
    const msix = await client.setIrqEventfds(PciIrq.MSIX, 0, 8);
    bench.device.trigger(PciIrq.MSIX, 5);
    assert.equal(await msix.line(5).next(1000), 1n);
    bench.device.trigger(PciIrq.MSIX, 0);
    bench.device.trigger(PciIrq.MSIX, 0);
    assert.equal(await msix.line(0).next(1000), 2n);
    assert.equal(msix.line(1).take(), 0n);
    msix.close();
  });

  it('replacing eventfds closes the replaced ones on the server; de-assigning closes them too', async () => {
    const first = await client.setIrqEventfds(PciIrq.MSIX, 0, 8);
    const open = openFdCount();
    const second = await client.setIrqEventfds(PciIrq.MSIX, 2, 3);
    // +3 eventfds here, +3 received by the server, -3 replaced ones closed there.
    assert.equal(openFdCount(), open + 3);
    bench.device.trigger(PciIrq.MSIX, 3);
    assert.equal(await second.line(3).next(1000), 1n);
    assert.equal(first.line(3).take(), 0n);
    await client.setIrqs(PciIrq.MSIX, 0, 8, 'trigger', 'deassign');
    assert.equal(openFdCount(), open + 3 - 8);
    assert.deepEqual(bench.device.triggers[PciIrq.MSIX], new Array(8).fill(null));
    first.close();
    second.close();
  });

  it('DATA_NONE and DATA_BOOL trigger; count 0 disables the index and closes its eventfds', async () => {
    const msi = await client.setIrqEventfds(PciIrq.MSI, 0, 4);
    await client.setIrqs(PciIrq.MSI, 1, 2, 'trigger', 'none');
    assert.deepEqual(await Promise.all([msi.line(1).next(1000), msi.line(2).next(1000)]), [1n, 1n]);
    await client.setIrqs(PciIrq.MSI, 0, 4, 'trigger', [false, false, true, false]);
    assert.equal(await msi.line(2).next(1000), 1n);
    assert.equal(msi.line(0).take() + msi.line(3).take(), 0n);
    const open = openFdCount();
    await client.setIrqs(PciIrq.MSI, 0, 0, 'trigger', 'none');
    assert.equal(openFdCount(), open - 4);
    assert.deepEqual(bench.device.triggers[PciIrq.MSI], [null, null, null, null]);
    msi.close();
  });

  it('mask and unmask, with none, bools and eventfds, reach the device; an index that is not maskable refuses', async () => {
    await client.setIrqs(PciIrq.INTX, 0, 1, 'mask', 'none');
    await client.setIrqs(PciIrq.INTX, 0, 1, 'unmask', [true]);
    const unmask = await client.setIrqEventfds(PciIrq.INTX, 0, 1, 'unmask');
    const log = bench.device.setIrqsLog.map((r) => `${r.action}/${r.data}`);
    assert.deepEqual(log, ['mask/none', 'unmask/bool', 'unmask/eventfd']);
    await assert.rejects(client.setIrqs(PciIrq.MSIX, 0, 1, 'mask', 'none'), rejects('EINVAL'));
    await assert.rejects(client.setIrqs(PciIrq.MSIX, 6, 4, 'trigger', 'none'), rejects('EINVAL'));
    unmask.close();
  });

  it('an fd that is not an eventfd is refused (EINVAL) and closed', async () => {
    const memfd = MappedMemory.create('not-an-eventfd', 4096);
    const open = openFdCount();
    const body = new Uint8Array(20);
    const v = new DataView(body.buffer);
    v.setUint32(0, 20, true);
    v.setUint32(4, (1 << 2) | (1 << 5), true);
    v.setUint32(8, PciIrq.MSIX, true);
    v.setUint32(16, 1, true);
    const r = await client.request(Command.DEVICE_SET_IRQS, body, { fds: [memfd.fd] });
    assert.equal(r.errorNo, 22);
    assert.equal(openFdCount(), open);
    memfd.close();
  });
});

describe('region access', () => {
  it('REGION_WRITE then REGION_READ, in every implemented region', async () => {
    await client.regionWrite(PciRegion.BAR0, 0x20, bytes(1, 2, 3, 4, 5, 6, 7, 8));
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, 0x20, 8))], [1, 2, 3, 4, 5, 6, 7, 8]);
    await client.regionWrite(PciRegion.CONFIG, 0xfc, bytes(9, 9, 9, 9));
    assert.deepEqual([...bench.device.config.subarray(0xfc)], [9, 9, 9, 9]);
    bench.device.bar2.bytes.set([7, 7], 0xfffe);
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR2, 0xfffe, 2))], [7, 7]);
  });

  it('a 1 MiB-sized read is one message each way', async () => {
    const r = await client.regionRead(PciRegion.BAR2, 0, BAR2_SIZE);
    assert.equal(r.length, BAR2_SIZE);
  });

  it('a large read of device memory leaves straight from it; a small one, or one while the set lock is held, goes through regionRead', async () => {
    const mem = bench.device.bar2.bytes;
    for (let i = 0; i < BAR2_SIZE; i++) mem[i] = (i * 13 + 5) & 0xff;
    // Traced, every access reaches the session (none is answered in the native layer).
    const trace = (): void => {};
    subscribe(MESSAGE_CHANNEL, trace);
    try {
      bench.device.calls.length = 0;
      assert.deepEqual(await client.regionRead(PciRegion.BAR2, 0x100, 32 * 1024), mem.slice(0x100, 0x100 + 32 * 1024));
      assert.deepEqual(bench.device.calls, ['memory-read']);
      bench.device.calls.length = 0;
      assert.deepEqual(await client.regionRead(PciRegion.BAR2, 0x100, 4096), mem.slice(0x100, 0x1100));
      assert.deepEqual(bench.device.calls, ['read']);
    } finally {
      unsubscribe(MESSAGE_CHANNEL, trace);
    }
    // Untraced, BAR2 being plain memory as a whole, the native layer answers them (after the read that ends the trace).
    await client.regionRead(PciRegion.BAR2, 0, 4);
    bench.device.calls.length = 0;
    assert.deepEqual(await client.regionRead(PciRegion.BAR2, 0x100, 4096), mem.slice(0x100, 0x1100));
    assert.deepEqual(await client.regionRead(PciRegion.BAR2, 0x100, 32 * 1024), mem.slice(0x100, 0x100 + 32 * 1024));
    assert.deepEqual(bench.device.calls, [], 'no device call: answered by the native layer');
    // Another file of the set holds the lock: the read waits its turn as an op.
    const lock = bench.device.devSet!.lock;
    let release!: () => void;
    const held = lock.runAsync(() => new Promise<void>((r) => (release = r)));
    bench.device.calls.length = 0;
    const received = (): number => bench.server.clients()[0]!.counters.messagesIn;
    const before = received();
    const reading = client.regionRead(PciRegion.BAR2, 0, 32 * 1024);
    await until(() => received() > before, 'the read reached the server');
    release();
    await held;
    assert.deepEqual(await reading, mem.slice(0, 32 * 1024));
    assert.deepEqual(bench.device.calls, ['read']);
  });

  it('a large write to device memory is received straight into it; one out of range is refused and lands nowhere', async () => {
    const mem = bench.device.bar2.bytes;
    mem.fill(0);
    const data = new Uint8Array(BAR2_SIZE - 0x10).map((_, i) => (i * 29 + 1) & 0xff);
    bench.device.calls.length = 0;
    await client.regionWrite(PciRegion.BAR2, 0x10, data);
    assert.deepEqual(mem.subarray(0x10), data);
    assert.ok(bench.device.calls.includes('memory-write'), bench.device.calls.join());
    assert.ok(!bench.device.calls.includes('write'), 'regionWrite did not run: the data landed in place');
    mem.fill(0);
    await assert.rejects(client.regionWrite(PciRegion.BAR2, 0x20, data), rejects('EINVAL'));
    assert.ok(
      mem.every((b) => b === 0),
      'nothing of the refused write landed',
    );
    // The session goes on.
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, 0, 2))], [0, 0]);
  });

  it('out of range, a missing region, or more than max_data_xfer_size: EINVAL', async () => {
    await assert.rejects(client.regionRead(PciRegion.BAR0, BAR0_SIZE - 2, 4), rejects('EINVAL'));
    await assert.rejects(client.regionWrite(PciRegion.CONFIG, 256, bytes(1)), rejects('EINVAL'));
    await assert.rejects(client.regionRead(9, 0, 4), rejects('EINVAL'));
    await assert.rejects(client.regionRead(PciRegion.BAR1, 0, 4), rejects('EINVAL'));
    const r = await client.request(Command.REGION_READ, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 16, 0]));
    assert.equal(r.errorNo, 22);
  });

  it('posted writes (NO_REPLY) get no reply and land before a later read', async () => {
    await client.regionWrite(PciRegion.BAR0, 0x40, bytes(0xaa), { posted: true });
    await client.regionWrite(PciRegion.BAR0, 0x41, bytes(0xbb), { posted: true });
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, 0x40, 2))], [0xaa, 0xbb]);
  });

  it('REGION_WRITE_MULTI does every write in order; posted, it answers nothing', async () => {
    const n = await client.regionWriteMulti([
      { region: PciRegion.BAR0, offset: 0x80, data: bytes(1, 2) },
      { region: PciRegion.BAR0, offset: 0x81, data: bytes(3) },
      { region: PciRegion.CONFIG, offset: 0x10, data: bytes(1, 2, 3, 4, 5, 6, 7, 8) },
    ]);
    assert.equal(n, 3);
    assert.deepEqual([...bench.device.bar0.subarray(0x80, 0x82)], [1, 3]);
    assert.equal(await client.regionWriteMulti([{ region: PciRegion.BAR0, offset: 0x90, data: bytes(6) }], { posted: true }), undefined);
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, 0x90, 1))], [6]);
    await assert.rejects(client.regionWriteMulti([{ region: PciRegion.BAR0, offset: BAR0_SIZE, data: bytes(1) }]), rejects('EINVAL'));
  });

  it('pipelined commands are served in order, with a synchronous and an asynchronous device', async () => {
    for (const asyncOps of [false, true]) {
      bench.device.asyncOps = asyncOps;
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 64; i++) {
        work.push(client.regionWrite(PciRegion.BAR0, 0x300 + (i % 8), bytes(i)));
        work.push(client.regionRead(PciRegion.BAR0, 0x300 + (i % 8), 1));
      }
      const results = await Promise.all(work);
      for (let i = 0; i < 64; i++) assert.equal((results[2 * i + 1] as Uint8Array)[0], i, `read ${i} sees write ${i}`);
    }
  });
  it('an asynchronous op keeps the bytes it was given while more arrive', async () => {
    bench.device.asyncOps = true;
    bench.device.delayMs = 20;
    const first = client.regionWrite(PciRegion.BAR0, 0x300, bytes(1, 1, 1, 1));
    await tick(5); // read and handed to the device, which is still busy with it
    const second = client.regionWrite(PciRegion.BAR0, 0x300, bytes(2, 2, 2, 2));
    await Promise.all([first, second]);
    assert.deepEqual(
      bench.device.writeLog.map((w) => [...w]),
      [
        [1, 1, 1, 1],
        [2, 2, 2, 2],
      ],
    );
  });
});

describe('reset, features, migration', () => {
  it('DEVICE_RESET', async () => {
    await client.regionWrite(PciRegion.BAR0, 0, bytes(1));
    await client.reset();
    assert.equal(bench.device.resets, 1);
    assert.equal(bench.device.bar0[0], 0);
  });

  it('DEVICE_FEATURE: the core answers migration and DMA logging, the device its own features; unknown ones are ENOTTY', async () => {
    assert.deepEqual([...(await client.feature(Feature.MIGRATION, 'get'))], [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...(await client.feature(Feature.MIGRATION, 'probe'))], []);
    await assert.rejects(client.feature(Feature.MIGRATION, 'set', new Uint8Array(8)), rejects('EINVAL'));
    const stop = Uint8Array.of(1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
    assert.deepEqual([...(await client.feature(Feature.MIG_DEVICE_STATE, 'set', stop))], [...stop]);
    assert.equal((await client.feature(Feature.MIG_DEVICE_STATE, 'get'))[0], 1);
    assert.deepEqual([...(await client.feature(DRIVER_FEATURE, 'get'))], [1, 2, 3, 4]);
    await client.feature(Feature.DMA_LOGGING_START, 'probe');
    await assert.rejects(client.feature(0x200, 'probe'), rejects('ENOTTY'));
    await assert.rejects(client.feature(Feature.MIGRATION, 'get', new Uint8Array(0), 4), rejects('EINVAL'));
  });

  it('MIG_DATA_READ drains the STOP_COPY stream (a short answer means no more); MIG_DATA_WRITE delivers it to the load', async () => {
    const state = (s: number): Uint8Array => Uint8Array.of(s, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
    bench.device.migrationOut = new Uint8Array(100).map((_, i) => i);
    await assert.rejects(client.migrationDataRead(64), rejects('EINVAL'));
    await client.feature(Feature.MIG_DEVICE_STATE, 'set', state(MigState.STOP_COPY));
    assert.equal((await client.migrationDataRead(64)).length, 64);
    const rest = await client.migrationDataRead(64);
    assert.deepEqual([rest.length, rest[0]], [36, 64]);
    assert.equal((await client.migrationDataRead(64)).length, 0);
    await assert.rejects(client.migrationDataWrite(bytes(1, 2, 3)), rejects('EINVAL'));
    await client.feature(Feature.MIG_DEVICE_STATE, 'set', state(MigState.RESUMING));
    await client.migrationDataWrite(bytes(1, 2, 3));
    await client.migrationDataWrite(bytes(4));
    await client.feature(Feature.MIG_DEVICE_STATE, 'set', state(MigState.RUNNING));
    assert.deepEqual(
      bench.device.migrationIn.map((d) => [...d]),
      [[1, 2, 3, 4]],
    );
  });

  it('a device without migration refuses migration data with EINVAL', async () => {
    const plain = new TestDevice({ name: 'plain', core: bench.core });
    plain.register();
    const c = await bench.connect({ name: 'plain' });
    await assert.rejects(c.migrationDataRead(16), rejects('EINVAL'));
    await assert.rejects(c.migrationDataWrite(bytes(1)), rejects('EINVAL'));
    await assert.rejects(c.feature(Feature.MIGRATION, 'get'), rejects('ENOTTY'));
    await assert.rejects(c.feature(Feature.MIG_DEVICE_STATE, 'probe'), rejects('ENOTTY'));
    c.close();
    await until(() => plain.closes === 1);
    await plain.unregister();
  });
});

describe('DMA_MAP and DMA_UNMAP', () => {
  it('maps memfd memory and message-backed memory; EEXIST on overlap; ENOENT/EINVAL on bad unmaps; ALL', async () => {
    await withoutFdLeak(async () => {
      const a = await client.dmaMapMemory(0x10000, 0x4000);
      await client.dmaMapMessages(0x20000, new Uint8Array(0x1000));
      const ioas = [...bench.device.files][0]!.context!.ioas;
      assert.deepEqual(
        ioas.list().map((m) => [m.iova, m.length, m.backing.reach === 'messages']),
        [
          [0x10000, 0x4000, false],
          [0x20000, 0x1000, true],
        ],
      );
      await assert.rejects(client.dmaMapMessages(0x13000, new Uint8Array(0x2000)), rejects('EEXIST'));
      await assert.rejects(client.dmaUnmap(0x30000, 0x1000), rejects('ENOENT'));
      await assert.rejects(client.dmaUnmap(0x10000, 0x1000), rejects('EINVAL'));
      a.bytes[5] = 0x42;
      const seen = new Uint8Array(1);
      bench.device.dma!.readSync(0x10005, seen);
      assert.equal(seen[0], 0x42);
      await client.dmaUnmap(0x10000, 0x4000);
      assert.equal(ioas.size, 1);
      await client.dmaUnmapAll();
      assert.equal(ioas.size, 0);
    });
  });

  it('ENOSPC past max_dma_maps; EOVERFLOW past 2^53', async () => {
    const small = startServer({ names: ['small'], limits: { maxDmaMaps: 2 } });
    const c = await small.connect();
    await c.dmaMapMessages(0, new Uint8Array(4096));
    await c.dmaMapMessages(4096, new Uint8Array(4096));
    await assert.rejects(c.dmaMapMessages(8192, new Uint8Array(4096)), rejects('ENOSPC'));
    await assert.rejects(c.dmaMapMessages(2 ** 53, new Uint8Array(4096)), rejects('EOVERFLOW'));
    c.close();
    await small.close();
  });
});
