/**
 * A session handed from one server to another in one process, over real
 * sockets, as a daemon takeover does between two processes: server A
 * freezes, exports a device's listening socket and sessions, the fds go
 * through a real socketpair (SCM_RIGHTS), server B adopts them and thaws.
 * The client never reconnects. Checked: pipelined commands (some served by
 * A, some queued at the freeze, one cut in half by it) are all answered in
 * order; DMA mappings (an fd-backed one and a message-backed one over the
 * twin socket), interrupts and REQ work through B; a client that had not
 * done VERSION yet does it with B; B refusing what it cannot hold (its own
 * budgets) leaves nothing open, and A serves on after thaw().
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PciIrq, PciRegion, VfioCore } from '../../src/core/index.js';
import { close, openFdCount, recvmsg, sendmsg, socketPair } from '../../src/native/index.js';
import {
  Command,
  encodeMessage,
  encodeRegionRead,
  encodeRegionWrite,
  VfioUserClient,
  VfioUserServer,
  type DeviceServingState,
  type ServerLimits,
} from '../../src/vfio-user/index.js';
import { FixtureDevice, DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, DOORBELL_IRQ, DMA_BUF, REG_IOVA, REG_LEN } from './fixture-device.js';
import { RawPeer, QEMU_PROPOSAL, tick, versionText } from './server-harness.js';
import { until } from '../support/until.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** One side of a takeover: a core with one fixture device `dev0`, a server on the shared socket directory. */
function side(
  dir: string,
  options: { asyncMs?: number; limits?: Partial<ServerLimits>; follow?: boolean } = {},
): { server: VfioUserServer; device: FixtureDevice } {
  const core = new VfioCore({ requestBackoffMs: () => 5 });
  const device = new FixtureDevice({ name: 'dev0', core, ...(options.asyncMs === undefined ? {} : { asyncOps: true, delayMs: options.asyncMs }) });
  device.register();
  const server = new VfioUserServer({ core, socketDir: dir, follow: options.follow ?? true, ...(options.limits ? { limits: options.limits } : {}) });
  return { server, device };
}

function socketDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uvfio-to-'));
  dirs.push(d);
  return join(d, 'sockets');
}

/** `fds` through a real socketpair (SCM_RIGHTS), as the takeover channel sends them: the receiver's own fds. */
function passFds(fds: readonly number[]): number[] {
  const [a, b] = socketPair();
  try {
    const out: number[] = [];
    for (let i = 0; i < fds.length; i += 200) {
      assert.equal(sendmsg(a, Uint8Array.of(1), fds.slice(i, i + 200)), 1);
      const got: number[] = [];
      assert.equal(recvmsg(b, new Uint8Array(1), got), 1);
      out.push(...got);
    }
    return out;
  } finally {
    close(a);
    close(b);
  }
}

/** A freezes and exports dev0; its state and fds cross as they would between processes; B adopts it (still frozen). */
async function handOver(
  a: { server: VfioUserServer; device: FixtureDevice },
  b: { server: VfioUserServer; device: FixtureDevice },
): Promise<DeviceServingState> {
  await a.server.freeze();
  const fds: number[] = [];
  const state = structuredClone(a.server.exportDevice(a.device, fds));
  b.device.bar0.set(a.device.bar0); // what the device's migration stream carries
  await b.server.freeze();
  await b.server.adoptDevice(b.device, state, passFds(fds));
  return state;
}

const u64 = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

describe('a session taken over by another server', () => {
  it('pipelined commands are answered in order across the takeover: served, queued, and one cut in half', async () => {
    const dir = socketDir();
    const a = side(dir, { asyncMs: 15 });
    const b = side(dir, { follow: false });
    const peer = new RawPeer(a.server.socketPath('dev0')!);
    await peer.negotiate();
    const messages: Uint8Array[] = [];
    for (let i = 1; i <= 40; i++) messages.push(encodeRegionWrite(i, 0x400 + 8 * i, PciRegion.BAR0, u64(1000 + i)));
    for (let i = 41; i <= 80; i++) messages.push(encodeRegionRead(i, 0x400 + 8 * (i - 40), PciRegion.BAR0, 8));
    const before = messages.slice(0, 50);
    const cut = messages[50]!;
    for (const m of before) peer.write(m);
    peer.write(cut.subarray(0, 9)); // the freeze finds half a header
    await until(() => peer.frames.length >= 3, 'A answers a few', 5000);
    const state = await handOver(a, b);
    assert.equal(state.sessions.length, 1);
    const s = state.sessions[0]!;
    assert.ok(s.queued.length > 0, `commands were waiting at the freeze (${s.queued.length})`);
    assert.equal(s.socket.inbound.bytes.length, 9, 'the half message travels');
    b.server.thaw();
    peer.write(cut.subarray(9));
    for (const m of messages.slice(51)) peer.write(m);
    await until(() => peer.frames.length === 80, `every reply (${peer.frames.length} of 80)`, 10_000);
    const replies = peer.frames.splice(0);
    assert.deepEqual(
      replies.map((f) => f.msgId),
      Array.from({ length: 80 }, (_, k) => k + 1),
      'in order, none lost, none twice',
    );
    assert.deepEqual(
      replies.filter((f) => f.errorNo !== 0 || f.flags !== 1).map((f) => [f.msgId, f.flags, f.errorNo]),
      [],
      'all succeeded',
    );
    for (let i = 41; i <= 80; i++) {
      const data = replies[i - 1]!.body.subarray(16, 24);
      assert.equal(new DataView(data.buffer, data.byteOffset).getBigUint64(0, true), BigInt(1000 + i - 40), `read ${i} sees write ${i - 40}`);
    }
    const served = (d: FixtureDevice) => d.calls.filter((c) => c === 'read' || c === 'write').length;
    assert.ok(
      served(a.device) >= 3 && served(b.device) >= 1 && served(a.device) + served(b.device) === 80,
      `A served ${served(a.device)}, B ${served(b.device)}`,
    );
    peer.close();
    await b.server.close();
    await a.server.close();
  });

  it('DMA mappings (fd and message-backed over the twin socket), interrupts and REQ work through the new server; counters carry on', async () => {
    const fdsBefore = openFdCount();
    const dir = socketDir();
    const a = side(dir);
    const b = side(dir, { follow: false });
    const client = await VfioUserClient.connect(a.server.socketPath('dev0')!, { twinSocket: true });
    assert.equal(client.twinSocket, true);
    const mem = await client.dmaMapMemory(0x10_0000, 1 << 20);
    const lent = new Uint8Array(8192);
    await client.dmaMapMessages(0x40_0000, lent);
    const msix = await client.setIrqEventfds(PciIrq.MSIX, 0, 8);
    const req = await client.setIrqEventfds(PciIrq.REQ, 0, 1);
    const seen = a.server.clients(a.device)[0]!;
    await handOver(a, b);
    b.server.thaw();
    const now = b.server.clients(b.device);
    assert.equal(now.length, 1);
    assert.deepEqual(now[0]!.dma, seen.dma, 'the same mappings');
    assert.deepEqual([now[0]!.pid, now[0]!.connectedAt, now[0]!.bound], [seen.pid, seen.connectedAt, true]);
    assert.ok(now[0]!.counters.messagesIn >= seen.counters.messagesIn, 'counters carry on');
    assert.equal(b.device.calls.filter((c) => c === 'adoptIrqs').length, 9, '8 MSI-X vectors and REQ adopted');

    // DMA into the fd-backed mapping: the device writes what BAR0 holds at DMA_BUF.
    await client.regionWrite(PciRegion.BAR0, DMA_BUF, Uint8Array.of(7, 6, 5, 4));
    await client.regionWrite(PciRegion.BAR0, REG_IOVA, u64(0x10_0000 + 100));
    await client.regionWrite(PciRegion.BAR0, REG_LEN, u64(4));
    await client.regionWrite(PciRegion.BAR0, DOORBELL_DMA_WRITE, u64(1));
    assert.deepEqual([...mem.bytes.subarray(100, 104)], [7, 6, 5, 4], 'through the mapping B made of the same memfd');
    // DMA from the message-backed one: DMA_READ over the twin socket B adopted.
    lent.set([9, 8, 7], 10);
    await client.regionWrite(PciRegion.BAR0, REG_IOVA, u64(0x40_0000 + 10));
    await client.regionWrite(PciRegion.BAR0, REG_LEN, u64(3));
    await client.regionWrite(PciRegion.BAR0, DOORBELL_DMA_READ, u64(1));
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, DMA_BUF, 3))], [9, 8, 7]);
    // An interrupt: MSI-X vector 5 rung through B's device.
    const irq = msix.line(5).next();
    await client.regionWrite(PciRegion.BAR0, DOORBELL_IRQ, u64(5));
    assert.equal(await irq, 1n);
    // REQ: B's device going away asks the client through the adopted eventfd.
    const asked = req.line(0).next();
    const gone = b.device.unregister();
    assert.equal(await asked, 1n);
    client.close();
    await gone;
    await b.server.close();
    await a.server.close();
    await a.device.unregister();
    await until(() => openFdCount() === fdsBefore, `fds back to ${fdsBefore} (now ${openFdCount()})`, 2000);
  });

  it('a client that had not done VERSION yet does it with the new server', async () => {
    const dir = socketDir();
    const a = side(dir);
    const b = side(dir, { follow: false });
    const peer = new RawPeer(a.server.socketPath('dev0')!);
    await until(() => a.server.connectionCount() === 1, 'A has the connection');
    const state = await handOver(a, b);
    assert.equal(state.sessions[0]!.negotiated, null);
    assert.ok(state.sessions[0]!.versionDeadline! > Date.now(), 'its deadline travels');
    b.server.thaw();
    peer.write(encodeMessage(9, Command.VERSION, 0, versionText(0, 0, QEMU_PROPOSAL)));
    const reply = await peer.next();
    assert.equal(reply?.msgId, 9);
    assert.equal(reply?.errorNo, 0);
    assert.equal(b.server.clients(b.device)[0]?.bound, true);
    peer.close();
    await b.server.close();
    await a.server.close();
  });

  it('what the new server cannot hold is refused there with nothing left open; the old one serves on after thaw()', async () => {
    const dir = socketDir();
    const a = side(dir);
    const b = side(dir, { follow: false, limits: { maxDmaMapsTotal: 1 } }); // its own daemon-wide budget: one mapping
    const client = await VfioUserClient.connect(a.server.socketPath('dev0')!);
    await client.dmaMapMemory(0x10_0000, 1 << 16);
    await client.dmaMapMemory(0x20_0000, 1 << 16);
    await client.setIrqEventfds(PciIrq.MSIX, 0, 2);
    const fdsBefore = openFdCount();
    await a.server.freeze();
    const fds: number[] = [];
    const state = structuredClone(a.server.exportDevice(a.device, fds));
    await b.server.freeze();
    const received = passFds(fds);
    assert.equal(openFdCount(), fdsBefore + fds.length);
    await assert.rejects(b.server.adoptDevice(b.device, state, received), (e: Error & { code?: string }) => e.code === 'ENOSPC');
    await until(() => openFdCount() === fdsBefore, `every fd B received closed (${openFdCount()} open, ${fdsBefore} before)`, 2000);
    assert.equal(b.server.connectionCount(), 0);
    assert.ok(existsSync(a.server.socketPath('dev0')!), "B's failure leaves the socket file to A");
    a.server.thaw();
    await client.regionWrite(PciRegion.BAR0, 0x400, u64(42));
    assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, 0x400, 1))], [42], 'A serves as before');
    client.close();
    await tick(10);
    await b.server.close();
    await a.server.close();
  });

  it('exportDevice refuses a server that is not frozen (EBUSY)', async () => {
    const a = side(socketDir());
    assert.throws(
      () => a.server.exportDevice(a.device, []),
      (e: Error & { code?: string }) => e.code === 'EBUSY',
    );
    await a.server.close();
  });
});
