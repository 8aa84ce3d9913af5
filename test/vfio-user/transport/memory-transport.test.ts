/**
 * MemoryTransport on its own (framing, fds with SCM_RIGHTS rules,
 * backpressure, hang-ups), then a real client and a real server session
 * back to back over a pair of them, the twin socket included.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../../src/base/uapi.js';
import { closeFds, EventFd, openFdCount } from '../../../src/native/index.js';
import { Command, encodeDeviceInfoRequest, type Frame, MemoryTransport, VfioUserClient } from '../../../src/vfio-user/index.js';
import { DMA_BUF, DOORBELL_DMA_READ, DOORBELL_IRQ, REG_IOVA, REG_LEN } from '../fixture-device.js';
import { until } from '../../support/until.js';
import { perTestServer, tick, type Bench } from '../server-harness.js';

/** An owner's side of a transport that records what arrives. */
function owned(t: MemoryTransport): { frames: Frame[]; broken: string[]; closed: number; drained: number } {
  const seen = { frames: [] as Frame[], broken: [] as string[], closed: 0, drained: 0 };
  t.onMessage = (f) => void seen.frames.push({ ...f, body: f.body.slice(), fds: f.fds.slice() });
  t.onBroken = (failure) => void seen.broken.push(failure.error.code);
  t.onClose = () => void seen.closed++;
  t.onDrain = () => void seen.drained++;
  return seen;
}

describe('MemoryTransport', () => {
  it('frames pushed bytes wherever they are cut, and gives the fds to the message they came with', async () => {
    const before = openFdCount();
    const t = new MemoryTransport();
    const seen = owned(t);
    const a = encodeDeviceInfoRequest(1);
    const b = encodeDeviceInfoRequest(2);
    const efd = EventFd.create();
    t.push(a.subarray(0, 5));
    t.push(new Uint8Array([...a.subarray(5), ...b]), [efd.fd]);
    assert.equal(seen.frames.length, 0, 'nothing is delivered inside push()');
    await tick();
    assert.deepEqual(
      seen.frames.map((f) => [f.msgId, f.fds.length]),
      [
        [1, 0],
        [2, 1],
      ],
    );
    assert.equal(seen.frames[1]!.fds[0], efd.fd, 'the pushed fd itself: it is now the receiver’s');
    closeFds(seen.frames[1]!.fds);
    t.destroy();
    assert.equal(seen.closed, 1);
    assert.equal(openFdCount(), before, 'the eventfd went with its message');
  });

  it('sends copies with duplicated fds; a stalled peer makes pendingBytes grow until it reads', async () => {
    const t = new MemoryTransport();
    const seen = owned(t);
    const got: { bytes: number[]; fds: number[] }[] = [];
    t.onSend = (m, fds) => void got.push({ bytes: [...m], fds });
    const efd = EventFd.create();
    t.stall(true);
    const msg = new Uint8Array([1, 2, 3]);
    assert.equal(t.send(msg, [efd.fd]), true);
    msg[0] = 9;
    assert.equal(t.pendingBytes, 3);
    await tick();
    assert.equal(got.length, 0);
    t.stall(false);
    await tick();
    assert.deepEqual(
      got.map((g) => g.bytes),
      [[1, 2, 3]],
    );
    assert.notEqual(got[0]!.fds[0], efd.fd, 'a duplicate, the sender keeps its own');
    assert.equal(t.pendingBytes, 0);
    assert.equal(seen.drained, 1);
    closeFds(got[0]!.fds);
    efd.close();
    assert.throws(() => t.send(new Uint8Array(0), [1]), { code: 'EINVAL' });
    t.destroy();
    assert.equal(t.send(msg), false, 'a closed transport sends nothing');
  });

  it('pause() holds messages back until resume(); a hang-up closes after what came before', async () => {
    const t = new MemoryTransport();
    const seen = owned(t);
    t.pause();
    t.push(encodeDeviceInfoRequest(1));
    t.hangUp();
    await tick();
    assert.equal(seen.frames.length, 0);
    t.resume();
    await tick();
    assert.equal(seen.frames.length, 1);
    assert.equal(seen.closed, 1);
  });

  it('a broken stream is told once, and nothing after it is read', async () => {
    const t = new MemoryTransport();
    const seen = owned(t);
    const bad = encodeDeviceInfoRequest(1);
    bad[4] = 4; // msg_size below the header
    t.push(encodeDeviceInfoRequest(7));
    t.push(bad);
    t.push(encodeDeviceInfoRequest(8));
    await tick();
    t.resume();
    await tick();
    assert.deepEqual(
      seen.frames.map((f) => f.msgId),
      [7],
    );
    assert.deepEqual(seen.broken, ['EINVAL']);
    t.destroy();
  });
});

describe('a client and a server session over MemoryTransport.pair()', () => {
  let bench: Bench;
  perTestServer({}, (b) => {
    bench = b;
  });

  it('serve commands, DMA messages on the twin socket, interrupts, and end like a socket session', async () => {
    const [serverEnd, clientEnd] = MemoryTransport.pair();
    bench.server.attach(bench.device, serverEnd);
    const c = await VfioUserClient.over(clientEnd, { twinSocket: true });
    assert.equal(c.twinSocket, true, 'the twin is a real socketpair, its fd sent through memory');
    assert.equal((await c.getDeviceInfo()).numRegions, PciRegion.NUM);
    await c.regionWrite(PciRegion.BAR0, 0x40, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await c.regionRead(PciRegion.BAR0, 0x40, 3))], [1, 2, 3]);
    // The device reads client memory mapped without an fd: DMA_READ over the twin socket.
    const memory = new Uint8Array(4096);
    memory.set([7, 7, 7, 7], 16);
    await c.dmaMapMessages(0x10000, memory);
    const reg = (v: number): Uint8Array => new Uint8Array(new BigUint64Array([BigInt(v)]).buffer);
    await c.regionWrite(PciRegion.BAR0, REG_IOVA, reg(0x10010));
    await c.regionWrite(PciRegion.BAR0, REG_LEN, reg(4));
    await c.regionWrite(PciRegion.BAR0, DOORBELL_DMA_READ, reg(1));
    assert.deepEqual([...bench.device.bar0.subarray(DMA_BUF, DMA_BUF + 4)], [7, 7, 7, 7]);
    assert.equal(c.dma.served.reads, 1);
    const irqs = await c.setIrqEventfds(PciIrq.MSIX, 0, 8);
    await c.regionWrite(PciRegion.BAR0, DOORBELL_IRQ, reg(2));
    assert.equal(await irqs.line(2).next(), 1n);
    assert.equal(bench.server.clients(bench.device).length, 1);
    c.close();
    await until(() => bench.device.closes === 1, 'close_device', 2000);
    assert.equal(bench.server.clients().length, 0);
  });

  it('a server-side drop hangs the client up', async () => {
    const [serverEnd, clientEnd] = MemoryTransport.pair();
    const id = bench.server.attach(bench.device, serverEnd);
    const c = await VfioUserClient.over(clientEnd);
    const closed = new Promise<void>((resolve) => {
      c.onClose = () => resolve();
    });
    assert.equal(await bench.server.dropClient(id), true);
    await closed;
    await assert.rejects(c.request(Command.DEVICE_GET_INFO), { code: 'ENOTCONN' });
  });

  it('attach() refuses a device the server does not serve, and closes the transport', () => {
    const [serverEnd] = MemoryTransport.pair();
    const other = { core: null, name: 'x' } as unknown as Parameters<typeof bench.server.attach>[0];
    assert.throws(() => bench.server.attach(other, serverEnd), { code: 'ENODEV' });
    assert.equal(serverEnd.closed, true);
  });
});
