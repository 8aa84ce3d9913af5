/**
 * Client memory reached by the device: mapped here through the fd of
 * DMA_MAP, or through DMA_READ/DMA_WRITE messages to the client (main
 * socket or twin socket, QEMU's layout or the spec's), including the case
 * that deadlocks a naive server: a device op waiting for the client's DMA
 * reply while the connection is busy serving that very op.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import { PciRegion } from '../../src/base/uapi.js';
import { close, MappedMemory, memfdCreate, sealSize } from '../../src/native/index.js';
import { Command, encodeDmaMap, encodeDmaReadReply, encodeEmptyReply, encodeErrorReply, encodeRegionWrite } from '../../src/vfio-user/index.js';
import { DMA_BUF, DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, REG_IOVA, REG_LEN } from './fixture-device.js';
import { perTestServer, QEMU_PROPOSAL, RawPeer, type Bench } from './server-harness.js';
import { until } from '../support/until.js';

let bench: Bench;

perTestServer({ limits: { dmaTimeoutMs: 300 } }, (b) => {
  bench = b;
});

const u64 = (v: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

/** A raw peer that negotiated and mapped 4 KiB at `address` without an fd. */
async function rawWithMapping(address: bigint, json?: string, minor?: number): Promise<RawPeer> {
  const peer = new RawPeer(bench.path());
  await peer.negotiate(json, minor);
  peer.write(encodeDmaMap(1, { readable: true, writable: true, offset: 0n, address, size: 0x1000n }));
  assert.equal((await peer.next())!.errorNo, 0);
  return peer;
}

describe('DMA through mapped memory', () => {
  it('the device reads and writes the client memfd directly, with no message', async () => {
    const c = await bench.connect();
    const mem = await c.dmaMapMemory(0x100000, 0x10000);
    const dma = bench.device.dma!;
    dma.writeSync(0x100010, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...mem.bytes.subarray(0x10, 0x13)], [1, 2, 3]);
    mem.bytes.set([9, 8], 0x20);
    const seen = new Uint8Array(2);
    await dma.read(0x100020, seen);
    assert.deepEqual([...seen], [9, 8]);
    assert.deepEqual(c.dma.served, { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, failures: 0 });
    c.close();
  });

  it('a read-only mapping refuses device writes (EPERM); an unmapped address is EFAULT', async () => {
    const c = await bench.connect();
    await c.dmaMapMemory(0x100000, 0x1000, { writable: false });
    const dma = bench.device.dma!;
    assert.throws(
      () => dma.writeSync(0x100000, new Uint8Array(1)),
      (e) => isVfioError(e, 'EPERM'),
    );
    assert.throws(
      () => dma.readSync(0x200000, new Uint8Array(1)),
      (e) => isVfioError(e, 'EFAULT'),
    );
    c.close();
  });

  it('an fd offset that is not page aligned is honoured', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    const mem = MappedMemory.create('unaligned', 8192);
    mem.bytes[100] = 0x77;
    mem.bytes[100 + 4095] = 0x78;
    peer.write(encodeDmaMap(1, { readable: true, writable: true, offset: 100n, address: 0x5000n, size: 4096n }), [mem.fd]);
    const r = (await peer.next())!;
    assert.equal(r.errorNo, 0);
    const seen = new Uint8Array(4096);
    bench.device.dma!.readSync(0x5000, seen);
    assert.deepEqual([seen[0], seen[4095]], [0x77, 0x78]);
    mem.close();
    peer.close();
  });

  it('a mapping larger than an ArrayBuffer may be is one mapping, reached across its GiB boundaries', async () => {
    const c = await bench.connect();
    const GiB = 1024 * 1024 * 1024;
    const size = 5 * GiB + 0x10000;
    const fd = memfdCreate('big', size);
    sealSize(fd);
    const at = 4 * GiB - 2;
    const client = MappedMemory.map(fd, 4 * GiB - 4096, 8192);
    try {
      const map = encodeDmaMap(0, { readable: true, writable: true, offset: 0n, address: 0x4000_0000n, size: BigInt(size) });
      assert.equal((await c.request(Command.DMA_MAP, map.subarray(16), { fds: [fd] })).errorNo, 0);
      const ioas = [...bench.device.files][0]!.context!.ioas;
      assert.deepEqual(
        ioas.list().map((m) => m.length),
        [size],
      );
      bench.device.dma!.writeSync(0x4000_0000 + at, new Uint8Array([5, 6, 7, 8]));
      assert.deepEqual([...client.bytes.subarray(4094, 4098)], [5, 6, 7, 8], 'the client sees the device write');
      const seen = new Uint8Array(4);
      bench.device.dma!.readSync(0x4000_0000 + at, seen);
      assert.deepEqual([...seen], [5, 6, 7, 8]);
      // A view from a window, across a window boundary too.
      const v = bench.device.dma!.view(0x4000_0000 + at, 4, 3);
      assert.deepEqual([...v], [5, 6, 7, 8]);
      v[0] = 9;
      assert.equal(client.bytes[4094], 9);
      await assert.rejects(c.dmaUnmap(0x4000_0000, GiB), (e) => isVfioError(e, 'EINVAL'));
      await c.dmaUnmap(0x4000_0000, size);
      assert.equal(ioas.size, 0);
      assert.equal(v.byteLength, 0, 'a view is detached when its mapping goes');
    } finally {
      client.close();
      close(fd);
    }
    c.close();
  });
});

describe('DMA through messages', () => {
  for (const mode of [
    { name: 'main socket, spec layout', options: {} },
    { name: "main socket, QEMU's proposal (0.0)", options: { version: { major: 0, minor: 0 } } },
    { name: 'twin socket', options: { twinSocket: true } },
  ]) {
    it(`the device reaches memory the server cannot map (${mode.name})`, async () => {
      const c = await bench.connect(mode.options);
      assert.equal(c.twinSocket, mode.name === 'twin socket');
      const buf = new Uint8Array(0x3000);
      await c.dmaMapMessages(0x200000, buf);
      const dma = bench.device.dma!;
      await dma.write(0x200100, new Uint8Array([1, 2, 3, 4]));
      assert.deepEqual([...buf.subarray(0x100, 0x104)], [1, 2, 3, 4]);
      buf.set([7, 7, 7], 0x2ffd);
      const seen = new Uint8Array(3);
      await dma.read(0x202ffd, seen);
      assert.deepEqual([...seen], [7, 7, 7]);
      assert.throws(
        () => dma.readSync(0x200000, seen),
        (e) => isVfioError(e, 'EAGAIN'),
      );
      assert.deepEqual([c.dma.served.reads, c.dma.served.writes], [1, 1]);
      c.close();
    });
  }

  it('accesses above the transfer size are cut into several messages', async () => {
    const c = await bench.connect({ capabilities: { maxMsgFds: 16, maxDataXferSize: 4096 } });
    const buf = new Uint8Array(16384);
    await c.dmaMapMessages(0, buf);
    await bench.device.dma!.write(0, new Uint8Array(16384).fill(3));
    assert.equal(c.dma.served.writes, 4);
    assert.ok(buf.every((b) => b === 3));
    const back = new Uint8Array(10000);
    await bench.device.dma!.read(100, back);
    assert.equal(c.dma.served.reads, 3);
    c.close();
  });

  it('a device op waiting for a DMA reply on the main socket does not stall the session', async () => {
    const c = await bench.connect();
    const buf = new Uint8Array(4096);
    await c.dmaMapMessages(0x8000, buf);
    await c.regionWrite(PciRegion.BAR0, REG_IOVA, u64(0x8010));
    await c.regionWrite(PciRegion.BAR0, REG_LEN, u64(16));
    bench.device.bar0.fill(0xab, DMA_BUF, DMA_BUF + 16);
    // The doorbell's op awaits a DMA_WRITE to this client; the write and read
    // pipelined behind it must wait for it, and the DMA reply must not.
    const ring = c.regionWrite(PciRegion.BAR0, DOORBELL_DMA_WRITE, u64(1));
    const after = c.regionWrite(PciRegion.BAR0, DMA_BUF, new Uint8Array(16));
    const read = c.regionRead(PciRegion.BAR0, DMA_BUF, 1);
    await Promise.all([ring, after]);
    assert.equal((await read)[0], 0);
    assert.ok(buf.subarray(0x10, 0x20).every((b) => b === 0xab));
    buf.fill(0x11, 0x10, 0x20);
    await c.regionWrite(PciRegion.BAR0, DOORBELL_DMA_READ, u64(1));
    assert.equal(bench.device.bar0[DMA_BUF + 15], 0x11);
    c.close();
  });

  it('a DMA message sent while a backlog paused reading still gets its reply read', async () => {
    bench.device.asyncOps = true;
    const c = await bench.connect();
    const buf = new Uint8Array(4096);
    await c.dmaMapMessages(0x8000, buf);
    await c.regionWrite(PciRegion.BAR0, REG_IOVA, u64(0x8000));
    await c.regionWrite(PciRegion.BAR0, REG_LEN, u64(8));
    // 1100 posted writes (44 KB, one read) queue up behind the first,
    // asynchronous, one and pause reading (past 1024 queued); the doorbell
    // queued behind them needs its DMA reply read all the same.
    for (let i = 0; i < 1100; i++) void c.regionWrite(PciRegion.BAR0, DMA_BUF, u64(i), { posted: true });
    await c.regionWrite(PciRegion.BAR0, DOORBELL_DMA_WRITE, u64(1));
    assert.equal(new DataView(buf.buffer).getUint32(0, true), 1099);
    c.close();
  });

  it("QEMU's proposal (0.0) gets the spec's layout, as QEMU 11.1.3 speaks it live: count u64 at 8, data at 16", async () => {
    const peer = await rawWithMapping(0x1000n, QEMU_PROPOSAL, 0);
    const dma = bench.device.dma!;
    const writing = dma.write(0x1010, new Uint8Array([0xa1, 0xa2, 0xa3]));
    const w = (await peer.next())!;
    assert.deepEqual([w.cmd, w.size, w.body.length], [Command.DMA_WRITE, 32 + 3, 16 + 3]);
    const v = new DataView(w.body.buffer, w.body.byteOffset);
    assert.deepEqual([Number(v.getBigUint64(0, true)), Number(v.getBigUint64(8, true))], [0x1010, 3]);
    assert.deepEqual([...w.body.subarray(16, 19)], [0xa1, 0xa2, 0xa3]);
    peer.write(encodeEmptyReply(w.msgId, Command.DMA_WRITE));
    await writing;
    const dest = new Uint8Array(2);
    const reading = dma.read(0x1020, dest);
    const r = (await peer.next())!;
    assert.deepEqual([r.cmd, r.size], [Command.DMA_READ, 32]);
    peer.write(encodeDmaReadReply(r.msgId, 0x1020n, new Uint8Array([0xc1, 0xc2]), 'spec'));
    await reading;
    assert.deepEqual([...dest], [0xc1, 0xc2]);
    peer.close();
  });

  it('a DMA error reply fails the access with its errno; silence fails it with ETIMEDOUT; the session goes on', async () => {
    const peer = await rawWithMapping(0n);
    const dma = bench.device.dma!;
    const failing = dma.read(0, new Uint8Array(4));
    const r = (await peer.next())!;
    peer.write(encodeErrorReply(r.msgId, Command.DMA_READ, 'EFAULT'));
    await assert.rejects(failing, (e) => isVfioError(e, 'EFAULT'));
    const silent = dma.read(0, new Uint8Array(4));
    assert.equal((await peer.next())!.cmd, Command.DMA_READ);
    await assert.rejects(silent, (e) => isVfioError(e, 'ETIMEDOUT'));
    // A doorbell whose DMA times out is answered with that errno.
    peer.write(encodeRegionWrite(2, REG_LEN, PciRegion.BAR0, u64(4)));
    assert.equal((await peer.next())!.errorNo, 0);
    peer.write(encodeRegionWrite(3, DOORBELL_DMA_READ, PciRegion.BAR0, u64(1)));
    assert.equal((await peer.next())!.cmd, Command.DMA_READ);
    const answer = (await peer.next(2000))!;
    assert.deepEqual([answer.msgId, answer.errorNo], [3, 110]);
    peer.close();
  });

  it('a disconnect fails DMA messages still waiting (ENOTCONN)', async () => {
    const peer = await rawWithMapping(0n);
    const pending = bench.device.dma!.read(0, new Uint8Array(4));
    await peer.next();
    peer.close();
    await assert.rejects(pending, (e) => isVfioError(e, 'ENOTCONN') || isVfioError(e, 'ENODEV'));
    await until(() => bench.server.connectionCount() === 0);
  });
});
