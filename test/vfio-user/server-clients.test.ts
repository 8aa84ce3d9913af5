/**
 * What the server tells about its clients: identity (SO_PEERCRED and the
 * command line), counters, DMA mappings, dropping one; and the trace
 * channels, published only while someone subscribes.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import {
  Command,
  encodeMessage,
  HeaderFlags,
  INTERRUPT_CHANNEL,
  MESSAGE_CHANNEL,
  SESSION_CHANNEL,
  type InterruptTrace,
  type MessageTrace,
  type SessionTrace,
} from '../../src/vfio-user/index.js';
import { DOORBELL_IRQ } from './fixture-device.js';
import { perTestServer, RawPeer, type Bench } from './server-harness.js';
import { until } from '../support/until.js';

let bench: Bench;

perTestServer({ names: ['dev0', 'dev1'] }, (b) => {
  bench = b;
});

/** Collects what `name` publishes while `fn` runs. */
async function recording<T>(name: string, fn: () => Promise<void>): Promise<T[]> {
  const seen: T[] = [];
  const onMessage = (m: unknown): void => void seen.push(m as T);
  subscribe(name, onMessage);
  try {
    await fn();
  } finally {
    unsubscribe(name, onMessage);
  }
  return seen;
}

describe('VfioUserServer.clients()', () => {
  it('names the process behind each connection: pid, uid, gid and command, and whether it handshook', async () => {
    const peer = new RawPeer(bench.path());
    await until(() => bench.server.clients(bench.device).length === 1);
    await until(() => bench.server.clients()[0]!.command !== null, 'the command to be read', 2000);
    const [info] = bench.server.clients(bench.device);
    assert.equal(info!.pid, process.pid);
    assert.equal(info!.uid, process.getuid!());
    assert.equal(info!.gid, process.getgid!());
    assert.equal(info!.device, 'dev0');
    assert.match(info!.command!, /node/);
    assert.equal(info!.bound, false, 'no VERSION yet');
    assert.ok(Math.abs(info!.connectedAt - Date.now()) < 5000);
    await peer.negotiate();
    assert.equal(bench.server.clients(bench.device)[0]!.bound, true);
    assert.deepEqual(bench.server.clients(bench.devices[1]), [], 'the other device has nobody');
    peer.close();
    await until(() => bench.server.clients().length === 0);
  });

  it('counts messages, replies, errors, bytes and interrupts per client', async () => {
    const a = await bench.connect();
    const b = await bench.connect();
    const irqs = await a.setIrqEventfds(PciIrq.MSIX, 0, 8);
    await a.regionRead(PciRegion.BAR0, 0, 4);
    await a.regionWrite(PciRegion.BAR0, 0, new Uint8Array(4), { posted: true });
    await assert.rejects(a.regionRead(9, 0, 4)); // no region 9: an error reply
    const doorbell = new Uint8Array(8);
    doorbell[0] = 5;
    await a.regionWrite(PciRegion.BAR0, DOORBELL_IRQ, doorbell);
    await irqs.line(5).next();
    const [ca, cb] = bench.server.clients(bench.device).map((c) => c.counters);
    // a: VERSION, SET_IRQS, read, posted write, failed read, doorbell write.
    assert.equal(ca!.messagesIn, 6);
    assert.equal(ca!.repliesOut, 5, 'the posted write is not answered');
    assert.equal(ca!.errors, 1);
    assert.equal(ca!.interrupts, 1);
    assert.ok(ca!.bytesIn > 6 * 16 && ca!.bytesOut > 5 * 16, JSON.stringify(ca));
    assert.equal(cb!.messagesIn, 1, 'b only said VERSION');
    assert.equal(cb!.interrupts, 0);
    a.close();
    b.close();
  });

  it('lists the DMA mappings: fd-backed or message-backed, a large one told as one', async () => {
    const c = await bench.connect();
    await c.dmaMapMessages(0x10000, new Uint8Array(4096), { writable: false });
    await c.dmaMapMemory(0x100000, 0x2000);
    // Over 1 GiB: mapped here in two pieces, still one mapping to the client.
    await c.dmaMapMemory(0x1_0000_0000, 2 ** 30 + 4096);
    assert.deepEqual(bench.server.clients(bench.device)[0]!.dma, [
      { iova: 0x10000, size: 4096, backing: 'message', readable: true, writable: false },
      { iova: 0x100000, size: 0x2000, backing: 'fd', readable: true, writable: true },
      { iova: 0x1_0000_0000, size: 2 ** 30 + 4096, backing: 'fd', readable: true, writable: true },
    ]);
    c.close();
  });

  it('dropClient() ends one session and leaves the others; false for an unknown id', async () => {
    const a = await bench.connect();
    const b = await bench.connect({ name: 'dev1' });
    const closed = new Promise<void>((resolve) => {
      a.onClose = () => resolve();
    });
    const [ia] = bench.server.clients(bench.device);
    assert.equal(await bench.server.dropClient(ia!.id), true);
    await closed;
    assert.equal(bench.device.closes, 1, 'its file was closed');
    assert.deepEqual(
      bench.server.clients().map((c) => c.device),
      ['dev1'],
    );
    assert.equal(await bench.server.dropClient(ia!.id), false);
    assert.equal((await b.getDeviceInfo()).numRegions > 0, true);
    b.close();
  });
});

describe('trace channels', () => {
  it('publish every command with its request, reply, errno, latency and whether it was posted', async () => {
    const c = await bench.connect();
    const [id] = bench.server.clients().map((i) => i.id);
    const seen = await recording<MessageTrace>(MESSAGE_CHANNEL, async () => {
      await c.regionWrite(PciRegion.BAR0, 0x20, new Uint8Array([1, 2, 3, 4]));
      await c.regionWrite(PciRegion.BAR0, 0x24, new Uint8Array([5]), { posted: true });
      await assert.rejects(c.regionRead(9, 0, 4));
      await c.regionRead(PciRegion.BAR0, 0x20, 4);
    });
    assert.deepEqual(
      seen.map((m) => [m.device, m.client, m.cmd, m.errno, m.posted, m.reply === null]),
      [
        ['dev0', id, Command.REGION_WRITE, 0, false, false],
        ['dev0', id, Command.REGION_WRITE, 0, true, true],
        ['dev0', id, Command.REGION_READ, 22, false, false],
        ['dev0', id, Command.REGION_READ, 0, false, false],
      ],
    );
    const [write, , failed, read] = seen;
    // REGION_WRITE body: offset u64, region u32, count u32, data.
    assert.deepEqual([...write!.request.subarray(16)], [1, 2, 3, 4]);
    assert.equal(write!.reply!.length, 16, 'the write reply echoes offset, region, count');
    assert.equal(failed!.reply!.length, 0, 'an error reply has no body');
    assert.deepEqual([...read!.reply!.subarray(16)], [1, 2, 3, 4]);
    assert.ok(seen.every((m) => m.latencyNs > 0 && m.latencyNs < 1e9 && m.fds === 0));
    assert.notEqual(new Set(seen.map((m) => m.msgId)).size, 1);
    c.close();
  });

  it('publish a session opening (with identity), binding and closing (with the reason)', async () => {
    const seen = await recording<SessionTrace>(SESSION_CHANNEL, async () => {
      const peer = new RawPeer(bench.path());
      await peer.negotiate();
      // A msg_size below 16 breaks the stream and ends the session.
      const bad = encodeMessage(1, Command.DEVICE_GET_INFO, HeaderFlags.TYPE_COMMAND, new Uint8Array(0));
      bad[4] = 8;
      peer.write(bad);
      await peer.waitClosed();
      await until(() => bench.server.clients().length === 0);
    });
    assert.deepEqual(
      seen.map((s) => s.event),
      ['opened', 'bound', 'closed'],
    );
    const [opened, bound, closed] = seen;
    assert.equal(opened?.event === 'opened' && opened.pid, process.pid);
    assert.equal(bound?.event === 'bound' && bound.version.major, 0);
    assert.match(closed?.event === 'closed' ? closed.reason : '', /stream broke/);
    assert.ok(seen.every((s) => s.device === 'dev0' && s.client === opened!.client));
  });

  it('publish each interrupt a device signals, with its index and vector', async () => {
    const c = await bench.connect();
    const irqs = await c.setIrqEventfds(PciIrq.MSIX, 0, 8);
    const seen = await recording<InterruptTrace>(INTERRUPT_CHANNEL, async () => {
      const doorbell = new Uint8Array(8);
      doorbell[0] = 3;
      await c.regionWrite(PciRegion.BAR0, DOORBELL_IRQ, doorbell);
      await irqs.line(3).next();
    });
    assert.deepEqual(
      seen.map((i) => [i.device, i.index, i.vector]),
      [['dev0', PciIrq.MSIX, 3]],
    );
    c.close();
  });

  it('a client that closes says so: the reason is its hang-up', async () => {
    const seen = await recording<SessionTrace>(SESSION_CHANNEL, async () => {
      const c = await bench.connect();
      c.close();
      await until(() => bench.server.clients().length === 0);
    });
    const closed = seen.find((s) => s.event === 'closed');
    assert.equal(closed?.event === 'closed' && closed.reason, 'the client hung up');
  });
});
