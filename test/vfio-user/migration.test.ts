/**
 * Migration v2 and DMA logging on the wire, through real sockets: the
 * DEVICE_FEATURE features of the spec, MIG_DATA_READ/WRITE, the client's
 * migrate() between two devices (and its cancel on failure), and the dirty
 * pages of a device that DMA-writes client memory (the fixture's doorbell),
 * logged with no help from its driver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError, type ErrnoName } from '../../src/base/errors.js';
import { Feature, MigrationFlags, MigState, PciRegion } from '../../src/base/uapi.js';
import {
  clientPeer,
  decodeMigDataReadReply,
  dmaLoggingReport,
  encodeDmaLoggingControl,
  encodeMigState,
  migrate,
  migrationFlags,
  migrationState,
  setMigrationState,
  startDmaLogging,
  stopDmaLogging,
  type VfioUserClient,
} from '../../src/vfio-user/index.js';
import { MigDevice } from '../support/mig-device.js';
import { DMA_BUF, DOORBELL_DMA_WRITE, REG_IOVA, REG_LEN } from './fixture-device.js';
import { perTestServer, type Bench } from './server-harness.js';

let bench: Bench;
perTestServer({ names: ['dev0', 'dev1'] }, (b) => {
  bench = b;
});

const rejects = (code: ErrnoName) => (e: unknown) => isVfioError(e, code);
const u64 = (v: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};
const PAGE = 4096;

function bits(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >>> 3]! & (1 << (i & 7))) out.push(i);
  return out;
}

/** Has the fixture DMA-write `len` bytes of its buffer at `iova`. */
async function deviceWrites(c: VfioUserClient, iova: number, len: number): Promise<void> {
  await c.regionWrite(PciRegion.BAR0, REG_IOVA, u64(iova));
  await c.regionWrite(PciRegion.BAR0, REG_LEN, u64(len));
  await c.regionWrite(PciRegion.BAR0, DOORBELL_DMA_WRITE, u64(1));
}

describe('migration features on the wire', () => {
  it('MIGRATION and MIG_DEVICE_STATE: typed helpers, the reply echoes the state reached with data_fd -1', async () => {
    const c = await bench.connect();
    assert.equal(await migrationFlags(c), MigrationFlags.STOP_COPY);
    assert.equal(await migrationState(c), MigState.RUNNING);
    const reply = await c.feature(Feature.MIG_DEVICE_STATE, 'set', encodeMigState(MigState.STOP));
    assert.deepEqual([...reply], [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    await assert.rejects(setMigrationState(c, MigState.PRE_COPY), rejects('EINVAL'));
    await assert.rejects(c.feature(Feature.MIG_DEVICE_STATE, 'set', Uint8Array.of(1, 0, 0)), rejects('EINVAL'));
    await assert.rejects(c.feature(Feature.MIG_DEVICE_STATE, 'get', new Uint8Array(0), 4), rejects('EINVAL'));
    await assert.rejects(c.feature(Feature.DMA_LOGGING_REPORT, 'set', new Uint8Array(24)), rejects('EINVAL'));
    assert.equal(await migrationState(c), MigState.STOP);
    c.close();
  });

  it("migrate() moves one device's stream into another: source STOP, destination RUNNING", async () => {
    const [a, b] = bench.devices;
    a!.migrationOut = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
    const src = await bench.connect({ name: 'dev0' });
    const dst = await bench.connect({ name: 'dev1' });
    const stats = await migrate(clientPeer(src), clientPeer(dst), { chunkSize: 1000 });
    assert.equal(stats.stopCopyBytes, 3000);
    assert.equal(stats.precopyRounds, 0, 'the fixture has no PRE_COPY');
    assert.deepEqual(
      b!.migrationIn.map((d) => d.length),
      [3000],
    );
    assert.deepEqual([...b!.migrationIn[0]!.subarray(0, 4)], [0, 1, 2, 3]);
    assert.equal(await migrationState(src), MigState.STOP);
    assert.equal(await migrationState(dst), MigState.RUNNING);
    src.close();
    dst.close();
  });

  it('migrate() with PRE_COPY rounds streams the precopy data while the source runs', async () => {
    const make = (name: string, header: number): MigDevice => {
      const d = new MigDevice({ name, core: bench.core });
      d.header = Uint8Array.of(header);
      d.register();
      return d;
    };
    const a = make('mig-a', 0xaa);
    const b = make('mig-b', 0xaa);
    a.saved = Uint8Array.of(5, 6, 7);
    const src = await bench.connect({ name: 'mig-a' });
    const dst = await bench.connect({ name: 'mig-b' });
    const stats = await migrate(clientPeer(src), clientPeer(dst), { precopyRounds: 2 });
    assert.deepEqual([stats.precopyBytes, stats.stopCopyBytes, stats.precopyRounds], [1, 3, 2]);
    assert.deepEqual([...b.saved], [5, 6, 7]);
    assert.deepEqual(a.hooks, ['save:precopy:false', 'stop', 'save:stop-copy:true']);
    assert.deepEqual(b.hooks, ['stop', 'load:4', 'start']);
    src.close();
    dst.close();
    await Promise.all([a.unregister(), b.unregister()]);
  });

  it('a refused stream fails migrate() naming the step; the source runs again', async () => {
    const a = new MigDevice({ name: 'mig-a', core: bench.core });
    const b = new MigDevice({ name: 'mig-b', core: bench.core });
    b.header = Uint8Array.of(0xbb); // reads only streams that start with 0xbb
    a.register();
    b.register();
    const src = await bench.connect({ name: 'mig-a' });
    const dst = await bench.connect({ name: 'mig-b' });
    await assert.rejects(
      migrate(clientPeer(src), clientPeer(dst)),
      (e: unknown) => isVfioError(e, 'EBADMSG') && /destination → STOP/.test((e as Error).message),
    );
    assert.equal(await migrationState(src), MigState.RUNNING);
    assert.equal(a.running, true);
    assert.equal(await migrationState(dst), MigState.RESUMING);
    src.close();
    dst.close();
    await Promise.all([a.unregister(), b.unregister()]);
  });
});

describe('MIG_DATA_READ replies as peers send them', () => {
  it('takes size bytes and ignores padding after them (libvfio-user sizes its reply to the size asked)', () => {
    const body = new Uint8Array(8 + 64);
    new DataView(body.buffer).setUint32(0, 8 + 3, true);
    new DataView(body.buffer).setUint32(4, 3, true);
    body.set([7, 8, 9], 8);
    assert.deepEqual([...decodeMigDataReadReply(body, []).data], [7, 8, 9]);
    assert.throws(() => decodeMigDataReadReply(body.subarray(0, 10), []), rejects('EINVAL'));
  });
});

describe('DMA logging on the wire, of a device that DMA-writes', () => {
  it('START/REPORT/STOP over fd-mapped and message-backed memory; reports read and clear', async () => {
    const c = await bench.connect();
    await c.dmaMapMemory(0x100000, 16 * PAGE);
    await c.dmaMapMessages(0x200000, new Uint8Array(16 * PAGE));
    bench.device.bar0.fill(7, DMA_BUF, DMA_BUF + 100);
    assert.equal(await startDmaLogging(c, { pageSize: PAGE, ranges: [] }), PAGE);
    await deviceWrites(c, 0x100000 + 3 * PAGE - 10, 20); // pages 2 and 3
    await deviceWrites(c, 0x200000 + 5 * PAGE, 1); // page 5, by DMA_WRITE message
    assert.deepEqual(bits(await dmaLoggingReport(c, 0x100000, 16 * PAGE, PAGE)), [2, 3]);
    assert.deepEqual(bits(await dmaLoggingReport(c, 0x200000, 16 * PAGE, PAGE)), [5]);
    assert.deepEqual(bits(await dmaLoggingReport(c, 0x100000, 16 * PAGE, PAGE)), [], 'read and cleared');
    await stopDmaLogging(c);
    await assert.rejects(dmaLoggingReport(c, 0x100000, 16 * PAGE, PAGE), rejects('EINVAL'));
    c.close();
  });

  it('logs only the ranges asked for; the page size the device chose comes back', async () => {
    const c = await bench.connect();
    await c.dmaMapMemory(0x100000, 16 * PAGE);
    assert.equal(await startDmaLogging(c, { pageSize: 2 * PAGE, ranges: [{ iova: 0x100000 + 8 * PAGE, length: 8 * PAGE }] }), 2 * PAGE);
    await deviceWrites(c, 0x100000, 100);
    await deviceWrites(c, 0x100000 + 9 * PAGE, 100);
    assert.deepEqual(bits(await dmaLoggingReport(c, 0x100000, 16 * PAGE, PAGE)), [8, 9]);
    c.close();
  });

  it('refuses malformed control data and reports that do not fit argsz', async () => {
    const c = await bench.connect();
    await assert.rejects(c.feature(Feature.DMA_LOGGING_START, 'set', new Uint8Array(8)), rejects('EINVAL'));
    const lying = encodeDmaLoggingControl({ pageSize: PAGE, ranges: [] });
    lying[8] = 3; // announces 3 ranges, carries none
    await assert.rejects(c.feature(Feature.DMA_LOGGING_START, 'set', lying), rejects('EINVAL'));
    lying[8] = 0;
    lying[9] = 1; // 256 + ... ranges: more than allowed
    lying[10] = 1;
    await assert.rejects(c.feature(Feature.DMA_LOGGING_START, 'set', lying), rejects('E2BIG'));
    await assert.rejects(startDmaLogging(c, { pageSize: PAGE, ranges: [{ iova: 1, length: PAGE }] }), rejects('EINVAL'));
    await startDmaLogging(c, { pageSize: PAGE, ranges: [] });
    await assert.rejects(startDmaLogging(c, { pageSize: PAGE, ranges: [] }), rejects('EBUSY'));
    const report = new Uint8Array(24);
    new DataView(report.buffer).setBigUint64(8, BigInt(65 * PAGE), true);
    new DataView(report.buffer).setBigUint64(16, BigInt(PAGE), true);
    // 65 pages need a 16-byte bitmap; argsz leaves room for 8.
    await assert.rejects(c.feature(Feature.DMA_LOGGING_REPORT, 'get', report, 24 + 8), rejects('E2BIG'));
    c.close();
  });

  it('logging belongs to the client that started it: another client of the device sees none of it', async () => {
    const c = await bench.connect();
    const other = await bench.connect();
    await c.dmaMapMemory(0x100000, 4 * PAGE);
    await startDmaLogging(c, { pageSize: PAGE, ranges: [] });
    await assert.rejects(dmaLoggingReport(other, 0x100000, 4 * PAGE, PAGE), rejects('EINVAL'));
    c.close();
    other.close();
  });
});
