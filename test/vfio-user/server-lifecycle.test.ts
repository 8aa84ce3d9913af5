/**
 * Sessions ending every way they can — a client saying goodbye, a client
 * killed with SIGKILL, a stream cut mid-message, the server closing — and
 * devices coming and going under connected clients: each time the file is
 * closed, DMA mappings and their memory released, eventfds closed, device
 * state kept, and no fd left behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isVfioError } from '../../src/base/errors.js';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { MappedMemory } from '../../src/native/index.js';
import { UnixSocket } from '../../src/vfio-user/transport/unix-socket.js';
import { encodeDmaMap, encodeRegionRead, VfioUserClient, VfioUserServer } from '../../src/vfio-user/index.js';
import { FixtureDevice } from './fixture-device.js';
import { perTestServer, RawPeer, tick, type Bench } from './server-harness.js';
import { until } from '../support/until.js';

const here = dirname(fileURLToPath(import.meta.url));

let bench: Bench;

perTestServer({}, (b) => {
  bench = b;
});

describe('client disconnection', () => {
  it('a goodbye releases mappings, memory and eventfds; the device keeps its state', async () => {
    const c = await bench.connect({ twinSocket: true });
    await c.dmaMapMemory(0x100000, 0x10000);
    await c.dmaMapMessages(0x200000, new Uint8Array(4096));
    const msix = await c.setIrqEventfds(PciIrq.MSIX, 0, 8);
    await c.regionWrite(PciRegion.BAR0, 0x20, new Uint8Array([0xde, 0xad]));
    const ctx = [...bench.device.files][0]!.context!;
    assert.equal(ctx.ioas.size, 2);
    c.close();
    await until(() => bench.device.closes === 1);
    assert.equal(ctx.alive, false);
    assert.equal(bench.device.files.size, 0);
    assert.equal(msix.lines[0]!.eventfd.closed, true);
    const again = await bench.connect();
    assert.deepEqual([...(await again.regionRead(PciRegion.BAR0, 0x20, 2))], [0xde, 0xad]);
    again.close();
  });

  it('kill -9 of a client process is a disconnection like any other', async () => {
    const child = spawn(process.execPath, [join(here, 'kill-client.js'), bench.path(), 'twin'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('error', reject);
      setTimeout(() => reject(new Error('the client process never got ready')), 10_000).unref();
    });
    assert.equal(bench.server.connectionCount(bench.device), 1);
    assert.notEqual(bench.device.triggers[PciIrq.MSIX]![7], null);
    child.kill('SIGKILL');
    await exited;
    await until(() => bench.device.closes === 1, 'close_device', 3000);
    assert.equal(bench.server.connectionCount(), 0);
    assert.equal(bench.device.triggers[PciIrq.MSIX]![7], null); // close_device dropped them
    assert.equal(bench.device.state, 'registered');
  });

  it('a stream cut mid-message closes the fds of the message that never arrived', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    const mem = MappedMemory.create('cut', 4096);
    const map = encodeDmaMap(1, { readable: true, writable: true, offset: 0n, address: 0n, size: 4096n });
    peer.write(map.subarray(0, 30), [mem.fd]);
    mem.close();
    await tick();
    peer.close();
    await until(() => bench.device.closes === 1);
  });

  it('a client gone while its asynchronous op runs is torn down after it, without crashing', async () => {
    bench.device.asyncOps = true;
    const c = await bench.connect();
    const pending = c.regionRead(PciRegion.BAR0, 0, 4);
    c.close();
    await assert.rejects(pending, (e) => isVfioError(e, 'ENOTCONN'));
    await until(() => bench.device.closes === 1);
    bench.device.asyncOps = false;
    const again = await bench.connect();
    assert.equal((await again.regionRead(PciRegion.BAR0, 0, 4)).length, 4);
    again.close();
  });

  it('garbage mid-session ends only that session', async () => {
    const other = await bench.connect();
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    peer.write(encodeRegionRead(1, 0, 0, 4).subarray(0, 20));
    peer.write(new Uint8Array(64).fill(0xff));
    await peer.waitClosed();
    assert.equal((await other.regionRead(PciRegion.BAR0, 0, 4)).length, 4);
    other.close();
    peer.close();
  });
});

describe('devices coming and going', () => {
  it('unregister with clients connected: no new clients, REQ signalled with back-off, done when the last leaves', async () => {
    const a = await bench.connect();
    const b = await bench.connect();
    const req = await a.setIrqEventfds(PciIrq.REQ, 0, 1);
    const socket = bench.path();
    let done = false;
    const unregistering = bench.device.unregister().then(() => (done = true));
    assert.equal(existsSync(socket), false, 'the socket file is gone');
    assert.equal(bench.server.socketPath('dev0'), undefined);
    assert.throws(
      () => UnixSocket.connect(socket),
      (e) => isVfioError(e, 'ENOENT'),
    );
    assert.ok((await req.line(0).next(2000)) >= 1n, 'REQ was signalled');
    await until(() => bench.device.requests.length >= 3, 'repeated requests', 2000);
    assert.deepEqual(bench.device.requests.slice(0, 3), [0, 1, 2]);
    assert.equal((await b.getDeviceInfo()).numRegions, 9, 'clients already there are still served');
    a.close();
    await tick(30);
    assert.equal(done, false);
    b.close();
    await unregistering;
    assert.equal(bench.device.state, 'released');
  });

  it('server.close() drops the clients, which lets a pending unregister finish', async () => {
    const c = await bench.connect();
    const closed = new Promise<void>((resolve) => (c.onClose = () => resolve()));
    const unregistering = bench.device.unregister();
    await bench.server.close();
    await unregistering;
    await closed;
    assert.equal(c.closed, true);
  });

  it('follows the core: devices registered later get a socket; serve() and socketPath() for the daemon', async () => {
    const late = new FixtureDevice({ name: 'late', core: bench.core });
    late.register();
    assert.equal(statSync(bench.path('late')).mode & 0o777, 0o600);
    const c = await VfioUserClient.connect(bench.path('late'));
    assert.equal((await c.getDeviceInfo()).numIrqs, 5);
    c.close();
    await bench.server.serve(late);
    const never = new FixtureDevice({ name: 'never', core: bench.core });
    await assert.rejects(bench.server.serve(never), (e) => isVfioError(e, 'ENODEV'));
    never.release();
    const bad = new FixtureDevice({ name: 'a/b', core: bench.core });
    bad.register();
    await assert.rejects(bench.server.serve(bad), (e) => isVfioError(e, 'EINVAL'));
    await until(() => late.closes === 1);
    await late.unregister();
    await bad.unregister();
  });

  it('a second server on the same directory and core does not steal live sockets', async () => {
    const other = new VfioUserServer({ core: bench.core, socketDir: dirname(bench.path()), follow: false });
    await assert.rejects(other.serve(bench.device), (e) => isVfioError(e, 'EADDRINUSE'));
    await other.close();
    const c = await bench.connect();
    c.close();
  });
});
