/**
 * The server's own limits (issue 10's transport share): clients per device
 * and in total, the VERSION deadline, never-handshaken clients dropped when
 * their device goes, replies a client does not read and commands that wait
 * their turn, each bounded; and what an idle client keeps.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PciRegion } from '../../src/base/uapi.js';
import {
  Command,
  encodeDeviceInfoRequest,
  encodeRegionRead,
  encodeRegionWrite,
  type Frame,
  hasErrorFlag,
  MemoryTransport,
  type ServerLog,
} from '../../src/vfio-user/index.js';
import { BufferPool } from '../../src/vfio-user/buffer-pool.js';
import { until } from '../support/until.js';
import { BAR2_SIZE } from './fixture-device.js';
import { MemoryPeer } from './memory-peer.js';
import { perTestServer, RawPeer, tick, type Bench } from './server-harness.js';

let bench: Bench;
const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
const log: ServerLog = {
  info: (msg, fields) => void logs.push({ msg, ...(fields ? { fields } : {}) }),
  warn: (msg, fields) => void logs.push({ msg, ...(fields ? { fields } : {}) }),
};

perTestServer(
  {
    names: ['dev0', 'dev1'],
    limits: { maxDeviceClients: 2, maxClients: 3, versionTimeoutMs: 300, replyQueueBytes: 64 * 1024, requestQueueBytes: 64 * 1024 },
    log,
  },
  (b) => {
    bench = b;
    logs.length = 0;
  },
);

/** The session's answer to `id`, after any other frames (their fds closed). */
async function answerTo(peer: MemoryPeer | RawPeer, id: number, ms = 2000): Promise<Frame> {
  for (;;) {
    const f = await peer.next(ms);
    assert.ok(f !== null, `the session hung up before answering ${id}`);
    if (f.msgId === id) return f;
  }
}

describe('clients per device and in total', () => {
  it('a connection past device-clients is closed at once and logged; the others and the other device are served', async () => {
    const a = await bench.connect();
    const b = await bench.connect();
    const third = new RawPeer(bench.path());
    await third.waitClosed(2000);
    assert.equal(bench.server.connectionCount(bench.device), 2);
    assert.ok(
      logs.some((l) => l.msg === 'vfio-user client refused: over a limit' && l.fields?.['limit'] === 'device-clients'),
      JSON.stringify(logs),
    );
    const other = await bench.connect({ name: 'dev1' });
    assert.equal((await a.getDeviceInfo()).numRegions, PciRegion.NUM);
    b.close();
    await until(() => bench.server.connectionCount(bench.device) === 1, 'the second client to be gone');
    const again = await bench.connect();
    assert.equal((await again.getDeviceInfo()).numRegions, PciRegion.NUM, 'a place freed is a place taken');
    third.close();
    for (const c of [a, other, again]) c.close();
  });

  it('clients bounds all devices together; attach() refuses past it with EUSERS', async () => {
    const a = await bench.connect();
    const b = await bench.connect();
    const c = await bench.connect({ name: 'dev1' });
    const fourth = new RawPeer(bench.path('dev1'));
    await fourth.waitClosed(2000);
    assert.throws(() => bench.server.attach(bench.devices[1]!, new MemoryTransport()), { code: 'EUSERS' });
    assert.equal(bench.server.connectionCount(), 3);
    for (const x of [a, b, c]) x.close();
    fourth.close();
  });
});

describe('VERSION', () => {
  it('a client that does not complete VERSION within version-timeout is dropped; one that did stays', async () => {
    const idle = new RawPeer(bench.path());
    const talker = new RawPeer(bench.path());
    await talker.negotiate();
    const started = Date.now();
    await idle.waitClosed(2000);
    assert.ok(Date.now() - started >= 200, 'not before the deadline');
    assert.ok(logs.some((l) => l.msg === 'vfio-user client dropped: no VFIO_USER_VERSION in time'));
    await tick(400);
    talker.write(encodeDeviceInfoRequest(9));
    assert.equal((await answerTo(talker, 9)).errorNo, 0, 'the negotiated client outlives the deadline');
    talker.close();
  });

  it('when its device goes away, a client that never completed VERSION is dropped at once', async () => {
    const bound = await bench.connect();
    const idle = new RawPeer(bench.path());
    await until(() => bench.server.connectionCount(bench.device) === 2, 'both clients');
    const gone = bench.device.unregister();
    await idle.waitClosed(100);
    // The bound client is asked through REQ as ever; once it lets go the unregistration ends.
    bound.close();
    await gone;
  });
});

describe('what a client can make the server queue', () => {
  it('replies the client does not read stop the session at reply-queue; it serves on once they are read', async () => {
    const peer = MemoryPeer.attached(bench.server, bench.device);
    await peer.negotiate();
    peer.transport.stall(true);
    // 20 reads of all of BAR2 (64 KiB each), pipelined, never read.
    for (let i = 0; i < 20; i++) peer.write(encodeRegionRead(100 + i, 0, PciRegion.BAR2, BAR2_SIZE));
    await tick(50);
    const [info] = bench.server.clients(bench.device);
    assert.ok(info!.counters.repliesOut <= 3, `${info!.counters.repliesOut} replies made while none was read`);
    assert.ok(peer.transport.pendingBytes <= 64 * 1024 + BAR2_SIZE + 64, `${peer.transport.pendingBytes} bytes of replies held`);
    peer.transport.stall(false);
    for (let i = 0; i < 20; i++) {
      const f = (await peer.next())!;
      assert.deepEqual([f.msgId, f.cmd, hasErrorFlag(f.flags)], [100 + i, Command.REGION_READ, false]);
      assert.equal(f.body.length, 16 + BAR2_SIZE);
    }
    peer.close();
  });

  it('over a real socket too: a client that never reads its replies gets reply-queue plus what the kernel holds', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    peer.socket.pause();
    for (let i = 0; i < 400; i++) peer.write(encodeRegionRead(i, 0, PciRegion.BAR2, BAR2_SIZE));
    await tick(200);
    const made = bench.server.clients(bench.device)[0]!.counters.repliesOut;
    // The kernel's send buffer takes about 2 MiB (32 replies); the session queues 64 KiB more.
    assert.ok(made < 100, `${made} replies made for a client that reads none`);
    peer.socket.resume();
    let last = -1;
    for (let i = 0; i < 400; i++) last = (await answerTo(peer, i, 5000)).msgId;
    assert.equal(last, 399);
    peer.close();
  });

  it('commands waiting behind a slow one stop the reading at request-queue and are all served in order', async () => {
    bench.device.asyncOps = true;
    bench.device.delayMs = 100;
    const peer = MemoryPeer.attached(bench.server, bench.device);
    await peer.negotiate();
    // 4 KiB writes: each costs 4 KiB + 32 + 128 of the 64 KiB request-queue.
    const data = new Uint8Array(4096);
    for (let i = 0; i < 100; i++) peer.write(encodeRegionWrite(200 + i, 0, PciRegion.BAR2, data));
    await tick(50);
    const received = bench.server.clients(bench.device)[0]!.counters.messagesIn;
    assert.ok(received < 30, `${received} messages taken in while the first write waits`);
    bench.device.delayMs = 0;
    for (let i = 0; i < 100; i++) assert.equal((await answerTo(peer, 200 + i, 5000)).errorNo, 0);
    peer.close();
  });
});

describe('reply buffers', () => {
  it('a pool lends buffers and keeps the two largest given back', () => {
    const pool = new BufferPool(2);
    const small = pool.borrow(1000);
    const a = pool.borrow(1 << 20);
    const b = pool.borrow(1 << 20);
    const c = pool.borrow(1 << 20);
    assert.ok(a !== b && b !== c && a.length >= 1 << 20);
    pool.give(small);
    pool.give(a);
    pool.give(b);
    pool.give(c);
    const again = [pool.borrow(1 << 20), pool.borrow(1 << 20), pool.borrow(1 << 20)];
    assert.equal(again.filter((x) => x === a || x === b || x === c).length, 2, 'the small one made room');
    assert.ok(pool.borrow(2 << 20).length >= 2 << 20, 'a larger request gets a larger buffer');
  });

  it('sessions answering large reads share the lent buffers: 2 clients read 64 KiB at once, each gets its own bytes', async () => {
    bench.device.bar2.bytes.fill(7);
    bench.device.asyncOps = true;
    const a = await bench.connect();
    const b = await bench.connect();
    const [ra, rb] = await Promise.all([a.regionRead(PciRegion.BAR2, 0, BAR2_SIZE), b.regionRead(PciRegion.BAR2, 0, BAR2_SIZE)]);
    assert.ok(ra.every((x) => x === 7) && rb.every((x) => x === 7));
    a.close();
    b.close();
  });
});
