import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createHash, randomFillSync } from 'node:crypto';
import { VfioError } from '../../../src/base/errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { close, eventfd, eventfdRead, eventfdWrite, MappedMemory, openFdCount, setNonblocking, socketPair } from '../../../src/native/index.js';
import { UnixSocket } from '../../../src/vfio-user/transport/unix-socket.js';
import { LingerBackoff, lingerBackoff, MAX_LINGER_SKIPS } from '../../../src/vfio-user/transport/linger-backoff.js';
import { NATIVE_INDEX, rawPair, runScript, tempDir } from '../../native/support.js';
import { until } from '../../support/until.js';

const UNIX_SOCKET = new URL('../../../src/vfio-user/transport/unix-socket.js', import.meta.url).href;

const tmp = tempDir();
after(() => tmp.done());

let pairs = 0;
function pair(): [UnixSocket, UnixSocket] {
  const [a, b] = rawPair(tmp.path(`pair-${pairs++}.sock`));
  return [new UnixSocket(a), new UnixSocket(b)];
}

/** Collects everything a socket receives, with its fds and close reason. */
function collect(sock: UnixSocket) {
  const got = { chunks: [] as Uint8Array[], bytes: 0, fds: [] as number[], closes: [] as Array<VfioError | undefined> };
  sock.onData = (chunk, fds) => {
    got.chunks.push(chunk.slice()); // the view is only valid during the callback
    got.bytes += chunk.length;
    got.fds.push(...fds);
  };
  sock.onClose = (err) => got.closes.push(err);
  return got;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}

test('echo: bytes both ways, onClose once for each side', async () => {
  const before = openFdCount();
  const [client, server] = pair();
  const s = collect(server);
  server.onData = (chunk) => server.write(chunk);
  const c = collect(client);
  client.write(new TextEncoder().encode('ping'));
  await until(() => c.bytes === 4, 'the echo');
  assert.equal(new TextDecoder().decode(concat(c.chunks)), 'ping');
  client.destroy();
  client.destroy();
  await until(() => s.closes.length === 1, 'the server to see EOF');
  assert.deepEqual(c.closes, [undefined]);
  assert.deepEqual(s.closes, [undefined], 'a hangup is a clean close');
  assert.equal(client.write(new Uint8Array(1)), false, 'writing to a closed socket sends nothing');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(c.closes.length + s.closes.length, 2, 'still exactly once each');
  assert.equal(openFdCount(), before);
});

test('fds both ways: an eventfd to the server, a memfd back, mapped and shared', async () => {
  const before = openFdCount();
  const [client, server] = pair();
  const s = collect(server);
  const c = collect(client);
  const irq = eventfd(0, { nonblock: true });
  client.write(new Uint8Array([1]), [irq]);
  await until(() => s.fds.length === 1, 'the eventfd to arrive');
  eventfdWrite(s.fds[0]!, 1);
  assert.equal(eventfdRead(irq), 1n, 'the server signals the client through it');

  const bar = MappedMemory.create('uvfio-bar', 4096);
  server.write(new Uint8Array([2]), [bar.fd]);
  await until(() => c.fds.length === 1, 'the memfd to arrive');
  const seen = MappedMemory.map(c.fds[0]!, 0, 4096);
  bar.bytes[123] = 0x77;
  assert.equal(seen.bytes[123], 0x77, 'the server writes, the client sees');
  seen.bytes[0] = 0x33;
  assert.equal(bar.bytes[0], 0x33, 'and back');
  seen.close();
  bar.close();
  for (const fd of [irq, s.fds[0]!, c.fds[0]!]) close(fd);
  client.destroy();
  server.destroy();
  assert.equal(openFdCount(), before);
});

test('8 MiB to a paused reader: partial write, queue, drain, bytes intact and in order', async () => {
  const before = openFdCount();
  const [writer, reader] = pair();
  const r = collect(reader);
  reader.pause();
  const big = randomFillSync(new Uint8Array(8 << 20));
  let drains = 0;
  writer.onDrain = () => drains++;
  assert.equal(writer.write(big), true);
  assert.ok(writer.pendingBytes > 0 && writer.pendingBytes < big.length, 'the kernel took part of it');
  // Queued behind: a small write with an fd the caller closes at once.
  const efd = eventfd(0, { nonblock: true });
  writer.write(new Uint8Array([0xee]), [efd]);
  close(efd);
  const tail = new Uint8Array([1, 2, 3]);
  writer.write2(tail.subarray(0, 1), tail.subarray(1));
  const queued = writer.pendingBytes;
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(writer.pendingBytes, queued, 'nothing moves while the reader is paused');
  assert.equal(r.bytes, 0);
  reader.resume();
  await until(() => r.bytes === big.length + 4, 'everything to arrive', 20000);
  const all = concat(r.chunks);
  assert.ok(Buffer.from(all.subarray(0, big.length)).equals(big), '8 MiB identical');
  assert.deepEqual([...all.subarray(big.length)], [0xee, 1, 2, 3], 'order kept');
  assert.equal(r.fds.length, 1, 'the fd arrived once');
  assert.equal(writer.pendingBytes, 0);
  assert.ok(drains >= 1);
  close(r.fds[0]!);
  writer.destroy();
  reader.destroy();
  assert.equal(openFdCount(), before);
});

test('destroy drops the queue and closes its duplicated fds; end() flushes first', async () => {
  const before = openFdCount();
  const [writer, reader] = pair();
  const r = collect(reader);
  reader.pause();
  const w = collect(writer);
  const big = new Uint8Array(4 << 20);
  writer.write(big);
  const efd = eventfd();
  for (let i = 0; i < 10; i++) writer.write(new Uint8Array([i]), [efd]);
  close(efd);
  writer.destroy();
  assert.deepEqual(w.closes, [undefined]);
  assert.equal(openFdCount(), before + 1, 'only the reader is left');
  reader.destroy();
  assert.equal(r.closes.length, 1);

  const [w2, r2] = pair();
  const got = collect(r2);
  const w2c = collect(w2);
  w2.write(big);
  w2.end();
  assert.equal(w2.write(new Uint8Array(1)), false, 'no writes after end');
  assert.equal(w2c.closes.length, 0, 'still flushing');
  await until(() => got.closes.length === 1, 'the reader to see EOF', 20000);
  assert.equal(got.bytes, big.length, 'end() delivered everything first');
  assert.deepEqual(w2c.closes, [undefined]);
  r2.destroy();
  assert.equal(openFdCount(), before);
});

test('a write to a vanished peer closes with EPIPE, once', async () => {
  const [a, b] = pair();
  const got = collect(a);
  b.destroy();
  assert.equal(a.write(new Uint8Array(8)), false);
  assert.equal(got.closes.length, 1);
  assert.equal(got.closes[0]?.code, 'EPIPE');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(got.closes.length, 1);
});

test('bad write arguments throw and leave the socket usable', async () => {
  const [a, b] = pair();
  const got = collect(b);
  const efd = eventfd();
  assert.throws(
    () => a.write(new Uint8Array(0), [efd]),
    (e: unknown) => e instanceof VfioError && e.code === 'EINVAL',
  );
  a.write(new Uint8Array([5]));
  await until(() => got.bytes === 1, 'the byte after the refused write');
  close(efd);
  a.destroy();
  b.destroy();
});

test('one read takes up to the cap; one event reads at most 16 times', async () => {
  const [a, b] = pair();
  const sizes: number[] = [];
  b.setReceiveBufferSize(16 * 1024);
  b.pause();
  a.write(new Uint8Array(1 << 20));
  b.onData = (chunk) => sizes.push(chunk.length);
  b.resume();
  await until(() => sizes.reduce((x, y) => x + y, 0) === 1 << 20, '1 MiB');
  assert.equal(Math.max(...sizes), 16 * 1024, 'reads as large as the cap, never larger');
  b.setReceiveBufferSize(1 << 20);
  const more: number[] = [];
  b.onData = (chunk) => more.push(chunk.length);
  a.write(new Uint8Array(200_000));
  await until(() => more.reduce((x, y) => x + y, 0) === 200_000, '200,000 bytes');
  assert.ok(Math.max(...more) <= 64 * 1024, 'the shared buffer is read 64 KiB at a time at most');

  b.setReceiveBufferSize(1);
  let reads = 0;
  let atImmediate = -1;
  b.onData = () => {
    if (reads++ === 0) setImmediate(() => (atImmediate = reads));
  };
  a.write(new Uint8Array(100));
  await until(() => reads === 100, 'all 100 one-byte reads');
  assert.equal(atImmediate, 16, 'the loop moved on after 16 reads');
  assert.throws(
    () => b.setReceiveBufferSize(0),
    (e: unknown) => e instanceof VfioError && e.code === 'EINVAL',
  );
  a.destroy();
  b.destroy();
});

test('sockets read into one shared buffer; a chunk held past its callback keeps its bytes while others read', async () => {
  const [a, b] = pair();
  const [c, d] = pair();
  const seen: Uint8Array[] = [];
  let held: Uint8Array | null = null;
  b.onData = (chunk) => {
    seen.push(chunk);
    held = chunk;
    b.holdReceiveBuffer();
  };
  d.onData = (chunk) => void seen.push(chunk);
  a.write(new Uint8Array([1, 2, 3]));
  await until(() => seen.length === 1, 'the held chunk');
  c.write(new Uint8Array([9, 9, 9, 9]));
  await until(() => seen.length === 2, 'a chunk of another socket');
  assert.deepEqual([...held!], [1, 2, 3], 'the held bytes were not overwritten');
  assert.notEqual(seen[1]!.buffer, held!.buffer, 'the other socket read elsewhere');
  b.releaseReceiveBuffer();
  // Without a hold, chunks of different sockets are views of one buffer.
  b.onData = (chunk) => void seen.push(chunk);
  a.write(new Uint8Array([4]));
  await until(() => seen.length === 3, 'a chunk after the release');
  c.write(new Uint8Array([5]));
  await until(() => seen.length === 4, 'and one of the other socket');
  assert.equal(seen[2]!.buffer, seen[3]!.buffer);
  b.holdReceiveBuffer(); // outside onData: nothing to hold, nothing happens
  for (const x of [a, b, c, d]) x.destroy();
});

test('UnixSocket.connect reports a missing server as ENOENT', () => {
  const path = tmp.path('nobody.sock');
  assert.equal(existsSync(path), false);
  assert.throws(
    () => UnixSocket.connect(path),
    (e: unknown) => e instanceof VfioError && e.code === 'ENOENT',
  );
});

test('fds lost to a full fd table: EMSGSIZE closes the connection, nothing leaks', { skip: !existsSync('/usr/bin/prlimit') }, () => {
  // In a child with a small fd limit, so filling its fd table is quick.
  const r = runScript(
    `
    import { acceptUnix, close, closeFds, connectUnix, eventfd, listenUnix, openFdCount, sendmsg } from '${NATIVE_INDEX}';
    import { UnixSocket } from '${UNIX_SOCKET}';
    const path = ${JSON.stringify(tmp.path('ctrunc.sock'))};
    const l = listenUnix(path); const a = connectUnix(path); const b = acceptUnix(l); close(l);
    const efd = eventfd();
    sendmsg(a, new Uint8Array([1]), [efd, efd, efd, efd]);
    const base = openFdCount();
    const filler = [];
    try { for (let i = 0; i < 100000; i++) filler.push(eventfd()); } catch {}
    closeFds(filler.splice(0, 2)); // room for 2 of the 4
    const s = new UnixSocket(b);
    s.onData = () => console.log('data should not arrive');
    s.onClose = (err) => {
      closeFds(filler);
      console.log('close:' + err?.code + ' leak:' + (openFdCount() - (base - 1)));
      process.exit(0);
    };
  `,
    10000,
    ['/usr/bin/prlimit', '--nofile=128:128'],
  );
  assert.match(r.stdout, /close:EMSGSIZE leak:0/, r.stderr);
});

test("a second copy of this module in the process reads for itself: neither finds its bytes in the other's buffer", async () => {
  // The same file under another URL is another module instance, with its own
  // shared buffer, on the same addon: the native read-ahead buffer is the
  // first copy's, and the second must not take it over.
  const copy = (await import(`${UNIX_SOCKET}?copy`)) as { UnixSocket: typeof UnixSocket };
  const [a1, a2] = pair();
  const [r1, r2] = rawPair(tmp.path('copy.sock'));
  const b1 = new copy.UnixSocket(r1);
  const b2 = new copy.UnixSocket(r2);
  const wrong: string[] = [];
  let aBytes = 0;
  let bBytes = 0;
  // Each round's bytes differ from every other's, so stale bytes show.
  let aExpect = 0;
  let bExpect = 0;
  a2.onData = (chunk) => {
    if (chunk.some((v) => v !== aExpect)) wrong.push(`the first copy read ${chunk[0]!}, not ${aExpect}`);
    aBytes += chunk.length;
  };
  b2.onData = (chunk) => {
    if (chunk.some((v) => v !== bExpect)) wrong.push(`the second copy read ${chunk[0]!}, not ${bExpect}`);
    bBytes += chunk.length;
  };
  for (let round = 1; round <= 50; round++) {
    aExpect = 2 * round;
    a1.write(new Uint8Array(100).fill(aExpect));
    await until(() => aBytes === round * 100, 'the first copy read');
    bExpect = 2 * round + 1;
    b1.write(new Uint8Array(100).fill(bExpect));
    await until(() => bBytes === round * 100, 'the second copy read');
  }
  assert.deepEqual(wrong, []);
  for (const s of [a1, a2, b1, b2]) s.destroy();
});

/**
 * A request-reply peer in a process of its own: it sends 4-byte counters,
 * each once the previous one came back, `count` in all, then closes; it
 * exits 0 if every reply matched. Returns our end of its socket.
 */
function pingPongPeer(count: number): { fd: number; child: ChildProcess } {
  const [ours, theirs] = socketPair();
  const peer =
    "const s = new (require('node:net').Socket)({ fd: 3, readable: true, writable: true }); let n = 0, got = Buffer.alloc(0);" +
    'const send = () => { const b = Buffer.alloc(4); b.writeUInt32LE(n); s.write(b); };' +
    `s.on('data', (d) => { got = Buffer.concat([got, d]); while (got.length >= 4) { if (got.readUInt32LE(0) !== n) process.exit(3); got = got.subarray(4); if (++n === ${count}) { s.end(); return; } send(); } });` +
    'send();';
  const child = spawn(process.execPath, ['-e', peer], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
  close(theirs);
  return { fd: ours, child };
}

test('setLinger: a request-reply peer is served in order while the socket lingers for it, to its close', { timeout: 20_000 }, async () => {
  const { fd, child } = pingPongPeer(300);
  const socket = new UnixSocket(fd);
  socket.setLinger(16);
  const seen: number[] = [];
  let start: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  const closed = new Promise<VfioError | undefined>((resolve) => (socket.onClose = resolve));
  socket.onData = (chunk) => {
    start ??= performance.eventLoopUtilization();
    for (let at = 0; at + 4 <= chunk.length; at += 4) seen.push(new DataView(chunk.buffer, chunk.byteOffset + at).getUint32(0, true));
    socket.write(chunk.slice());
  };
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(await closed, undefined, 'the peer closed: no error');
  // Where the waiting for the peer happened: lingering, it is inside the
  // socket's callback, not the loop's idle wait (Node counts only that as
  // idle): 0.96 here, 0.22 with setLinger(0).
  const { utilization } = performance.eventLoopUtilization(start);
  assert.ok(utilization > 0.6, `the loop waited for the peer itself (utilization ${utilization.toFixed(2)}): no lingering`);
  assert.equal(await exit, 0, 'the peer got every reply back in order');
  assert.deepEqual(
    seen,
    Array.from({ length: 300 }, (_, i) => i),
  );
});

test(
  'setLinger: replies finished by a nextTick or a microtask reach the peer: pending work runs before each linger',
  { timeout: 20_000 },
  async () => {
    const { fd, child } = pingPongPeer(300);
    const socket = new UnixSocket(fd);
    socket.setLinger(16);
    let start: ReturnType<typeof performance.eventLoopUtilization> | undefined;
    let n = 0;
    // Half of each reply now (the socket has answered: it will linger), the
    // other half from pending work the peer waits for: lingering before that
    // work ran would wait for a request that cannot come.
    socket.onData = (chunk) => {
      start ??= performance.eventLoopUtilization();
      const reply = chunk.slice();
      socket.write(reply.subarray(0, 2));
      const rest = (): void => void socket.write(reply.subarray(2));
      if (n++ % 2 === 0) process.nextTick(rest);
      else queueMicrotask(rest);
    };
    const closed = new Promise<VfioError | undefined>((resolve) => (socket.onClose = resolve));
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(await closed, undefined);
    assert.equal(await exit, 0, 'the peer got every reply back in order');
    const { utilization } = performance.eventLoopUtilization(start);
    assert.ok(utilization > 0.6, `the loop waited for the peer itself (utilization ${utilization.toFixed(2)}): no lingering`);
  },
);

test('setLinger backs off after lingers find the loop busy, and lingers again once one gets its bytes', { timeout: 20_000 }, async () => {
  // Counts the lingers tried (the back-off said yes) and those that got bytes.
  const realTry = lingerBackoff.tryNow.bind(lingerBackoff);
  const realGot = lingerBackoff.got.bind(lingerBackoff);
  let tried = 0;
  let got = 0;
  lingerBackoff.tryNow = () => {
    const yes = realTry();
    if (yes) tried++;
    return yes;
  };
  lingerBackoff.got = () => {
    got++;
    realGot();
  };
  try {
    const { fd, child } = pingPongPeer(600);
    const socket = new UnixSocket(fd);
    socket.setLinger(16);
    // For the first 100 messages the loop always has work, a chain of
    // immediates: every linger comes back false at once.
    let busy = true;
    const spin = (): void => {
      if (busy) setImmediate(spin);
    };
    spin();
    let messages = 0;
    let busyTries = 0;
    socket.onData = (chunk) => {
      messages += chunk.length / 4;
      if (busy && messages >= 100) {
        busy = false;
        busyTries = tried;
        got = 0;
      }
      socket.write(chunk.slice());
    };
    const closed = new Promise<VfioError | undefined>((resolve) => (socket.onClose = resolve));
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(await closed, undefined);
    assert.equal(await exit, 0, 'the peer got every reply back in order');
    // Skipping 1, 3, 7 ... events after each busy linger: ~6 tries in 100
    // events (100 without the back-off).
    assert.ok(busyTries <= 12, `${busyTries} lingers tried while the loop was always busy`);
    // The first try after the busy phase gets its bytes, and lingering goes on.
    assert.ok(got >= 250, `only ${got} of the last 500 messages were taken by lingering`);
  } finally {
    Reflect.deleteProperty(lingerBackoff, 'tryNow'); // the class's methods again
    Reflect.deleteProperty(lingerBackoff, 'got');
  }
});

test(
  'setLinger: a peer that streams without waiting for answers is not lingered for (its bytes batch up through the loop)',
  { timeout: 20_000 },
  async () => {
    const realTry = lingerBackoff.tryNow.bind(lingerBackoff);
    let asked = 0;
    lingerBackoff.tryNow = () => {
      asked++;
      return realTry();
    };
    try {
      const [ours, theirs] = socketPair();
      const peer =
        "const s = new (require('node:net').Socket)({ fd: 3, writable: true }); let n = 0; const more = () => { while (n < 2000) { const b = Buffer.alloc(4); b.writeUInt32LE(n++); if (!s.write(b)) return s.once('drain', more); } s.end(); }; more();";
      const child = spawn(process.execPath, ['-e', peer], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
      close(theirs);
      const socket = new UnixSocket(ours);
      socket.setLinger(16);
      let bytes = 0;
      socket.onData = (chunk) => void (bytes += chunk.length);
      const closed = new Promise<VfioError | undefined>((resolve) => (socket.onClose = resolve));
      assert.equal(await closed, undefined);
      assert.equal(await new Promise((resolve) => child.once('exit', resolve)), 0);
      assert.equal(bytes, 8000);
      assert.equal(asked, 0, 'no linger was considered: nothing was answered');
    } finally {
      Reflect.deleteProperty(lingerBackoff, 'tryNow');
    }
  },
);

/**
 * A peer in another process that reads `messages` writes of `size` bytes,
 * at most `chunk` bytes per read (blocking reads: it reads the moment
 * bytes come) and sleeping `pauseMs` after each, acks
 * each whole message with one byte, and prints the sha256 of all it read
 * before it exits. It says it is ready with one byte first.
 */
function readerPeer(messages: number, size: number, chunk: number, pauseMs: number): { fd: number; child: ChildProcess; digest: Promise<string> } {
  const [ours, theirs] = socketPair();
  setNonblocking(theirs, false); // its own file description: ours stays nonblocking
  const peer =
    "const fs = require('node:fs'); const h = require('node:crypto').createHash('sha256'); const buf = Buffer.alloc(" +
    chunk +
    '); const nap = new Int32Array(new SharedArrayBuffer(4)); let inMsg = 0, done = 0;' +
    `fs.writeSync(3, Buffer.of(0)); while (done < ${messages}) { const n = fs.readSync(3, buf);` +
    `if (n === 0) break; h.update(buf.subarray(0, n)); inMsg += n; while (inMsg >= ${size}) { inMsg -= ${size}; fs.writeSync(3, Buffer.of(1)); done++; }` +
    `${pauseMs > 0 ? `Atomics.wait(nap, 0, 0, ${pauseMs});` : ''} } console.log(h.digest('hex'));`;
  const child = spawn(process.execPath, ['-e', peer], { stdio: ['ignore', 'pipe', 'inherit', theirs] });
  close(theirs);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const digest = new Promise<string>((resolve) => child.once('exit', () => resolve(out.trim())));
  return { fd: ours, child, digest };
}

/**
 * A lingering socket sends `messages` writes of head + body (distinct
 * bytes each) to a readerPeer, each once the last is acked, and checks
 * that the peer read them all intact; the time spent in each write() and
 * how many the kernel took whole.
 */
async function sendAcked(messages: number, size: number, chunk: number, pauseMs: number): Promise<{ writeMs: number[]; whole: number }> {
  const { fd, digest } = readerPeer(messages, size, chunk, pauseMs);
  const socket = new UnixSocket(fd);
  socket.setLinger(16);
  const hash = createHash('sha256');
  const writeMs: number[] = [];
  let whole = 0;
  const acks: number[] = [];
  let wake: (() => void) | null = null;
  socket.onData = (chunk) => {
    acks.push(...chunk);
    wake?.();
  };
  const ack = async (): Promise<void> => {
    while (acks.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    acks.shift();
  };
  await ack(); // ready
  for (let i = 0; i < messages; i++) {
    const head = new Uint8Array(32).fill(i);
    const body = new Uint8Array(size - 32).map((_, j) => (i * 31 + j) & 0xff);
    hash.update(head).update(body);
    const t = performance.now();
    socket.write2(head, body);
    writeMs.push(performance.now() - t);
    if (socket.pendingBytes === 0) whole++;
    await ack();
  }
  assert.equal(await digest, hash.digest('hex'), 'the peer read every byte, in order');
  socket.destroy();
  return { writeMs, whole };
}

test(
  'setLinger: a write larger than the socket buffer goes on as the peer reads it, not through the queue; bytes intact',
  { timeout: 30_000 },
  async () => {
    const sent = await sendAcked(8, 1 << 20, 1 << 20, 0);
    // Each write could only be taken whole while the peer read it: the
    // kernel holds ~200 KiB of it. Some may still have waited too long on a
    // busy machine (then their rest went through the queue).
    assert.ok(sent.whole > 0, `no 1 MiB write went whole in the same call (${sent.writeMs.map((ms) => ms.toFixed(1)).join(', ')} ms)`);
  },
);

test('setLinger: a peer that reads slowly holds the thread for a wait in ever fewer of its large writes', { timeout: 60_000 }, async () => {
  // 64 KiB every 2 ms: no 512 KiB write's rest fits one wait (1 ms, and
  // the 256 KiB piece under way: ~10 ms). A wait in every write would hold
  // the thread for over a second; backing off (1, 3, 7 ... 64 writes
  // skipped) waits in 7 of them. The bounds leave room for a loaded
  // machine, where any write can take a millisecond.
  const messages = 128;
  const sent = await sendAcked(messages, 512 << 10, 64 << 10, 2);
  const total = sent.writeMs.reduce((a, b) => a + b, 0);
  const waited = sent.writeMs.filter((ms) => ms >= 0.9).length;
  assert.ok(waited <= 48, `${waited} of ${messages} writes took 0.9 ms or more`);
  assert.ok(total < 600, `the writes held the thread for ${total.toFixed(1)} ms in all`);
  const longest = Math.max(...sent.writeMs);
  assert.ok(longest < 200, `one write held the thread for ${longest.toFixed(1)} ms`);
});

test(
  'setLinger: the rest of a large message is read into its place as it comes, waiting in the callback, not the loop',
  { timeout: 30_000 },
  async () => {
    // 4 MiB after the first byte, 64 KiB a millisecond.
    const { pieces, utilization, bytes } = await receiveBody(64 * 65536 + 1, 64, 1);
    assert.ok(pieces >= 8, `4 MiB came in ${pieces} pieces`);
    // Lingering, the waits for the next piece are inside the socket's
    // callback (Node counts only its own wait as idle).
    assert.ok(utilization > 0.6, `the loop waited for the pieces itself (utilization ${utilization.toFixed(2)}): no lingering`);
    assert.ok(
      bytes.subarray(bytes.length - 65536).every((b) => b === 65),
      'intact',
    );
  },
);

/**
 * A UnixSocket lingering for the rest of a `size`-byte message whose first
 * byte the peer process sends alone, then the rest as `writes` (one
 * blocking write each, `pauseMs` apart). Resolves with the pieces the rest
 * came in, its event loop's utilization from the first byte on, and with
 * `ticks` the longest the loop went without running a 5 ms timer (a timer
 * due ends every linger).
 */
async function receiveBody(
  size: number,
  writes: number,
  pauseMs: number,
  ticks = false,
): Promise<{ pieces: number; longestMs: number; utilization: number; bytes: Uint8Array }> {
  const [ours, theirs] = socketPair();
  const part = (size - 1) / writes;
  const peer =
    "const fs = await import('node:fs');" +
    `const { setNonblocking } = await import(${JSON.stringify(NATIVE_INDEX)});` +
    'setNonblocking(3, false);' +
    'fs.writeSync(3, Buffer.from([1]));' +
    `for (let i = 0; i < ${writes}; i++) { if (i > 0) await new Promise((r) => setTimeout(r, ${pauseMs})); fs.writeSync(3, Buffer.alloc(${part}, i + 2)); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', peer], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
  close(theirs);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const socket = new UnixSocket(ours);
  socket.setLinger(16);
  socket.onClose = () => clearInterval(timer);
  const into = new Uint8Array(size);
  let got = 0;
  let pieces = 0;
  let longestMs = 0;
  let start: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  let last = performance.now();
  const timer = ticks
    ? setInterval(() => {
        longestMs = Math.max(longestMs, performance.now() - last);
        last = performance.now();
      }, 5)
    : undefined;
  await new Promise<void>((resolve) => {
    socket.onData = (chunk) => {
      start ??= performance.eventLoopUtilization();
      // The first bytes: from here on they go straight to `into`.
      into.set(chunk, got);
      got += chunk.length;
      socket.nextRead = () => (got < size ? into.subarray(got) : null);
    };
    socket.onFilled = (n) => {
      got += n;
      pieces++;
      if (got === size) resolve();
    };
  });
  const { utilization } = performance.eventLoopUtilization(start);
  clearInterval(timer);
  socket.destroy();
  await exited;
  return { pieces, longestMs, utilization, bytes: into };
}

test(
  'setLinger: the rest of a large message written at once comes in one wait, as a blocking MSG_WAITALL receive takes it',
  { timeout: 30_000 },
  async () => {
    const size = 4 * (1 << 20) + 1;
    const { pieces, bytes } = await receiveBody(size, 1, 0);
    // Without the wait it came in 15 pieces (a piece per socket buffer or less).
    assert.ok(pieces <= 3, `4 MiB came in ${pieces} pieces`);
    assert.ok(
      bytes.subarray(1).every((b) => b === 2),
      'intact',
    );
  },
);

test('setLinger: a peer that stops halfway holds a wait for the budget and a tick at most', { timeout: 30_000 }, async () => {
  const { pieces, longestMs, bytes } = await receiveBody(2 * (1 << 20) + 1, 2, 300, true);
  assert.ok(pieces >= 2, `${pieces} pieces`);
  // The second half comes 300 ms after the first: the wait gave up long
  // before (1 ms and a scheduler tick), and the loop ran its timers.
  assert.ok(longestMs < 100, `the loop went ${longestMs.toFixed(1)} ms without its timer`);
  assert.ok(
    bytes.subarray(1 + (1 << 20)).every((b) => b === 3),
    'intact',
  );
});

test('LingerBackoff: each busy linger doubles the events skipped (plus one) up to the limit; each linger that got its bytes halves them', () => {
  const b = new LingerBackoff();
  const skipped = (): number => {
    let n = 0;
    while (!b.tryNow()) n++;
    return n;
  };
  assert.equal(skipped(), 0, 'a fresh back-off lingers at once');
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    b.busy();
    seen.push(skipped());
  }
  assert.deepEqual(seen, [1, 3, 7, 15, 31, 63, 127, 255, 255, 255]);
  assert.equal(MAX_LINGER_SKIPS, 255);
  b.got(); // penalty 127
  b.got(); // 63
  b.busy(); // 127
  assert.equal(skipped(), 127);
  for (let i = 0; i < 8; i++) b.got();
  b.busy();
  assert.equal(skipped(), 1, 'after enough lingers got their bytes, one busy linger skips one event again');
  const capped = new LingerBackoff(64); // a socket's large-write waits
  for (let i = 0; i < 8; i++) capped.busy();
  let n = 0;
  while (!capped.tryNow()) n++;
  assert.equal(n, 64, 'a lower cap holds');
});
