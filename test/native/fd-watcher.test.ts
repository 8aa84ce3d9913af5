import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VfioError } from '../../src/base/errors.js';
import {
  close,
  eventfd,
  eventfdRead,
  eventfdWrite,
  FdWatcher,
  READABLE,
  recvmsg,
  runPendingWork,
  sendmsg,
  setReadAheadBuffer,
  socketPair,
  WRITABLE,
} from '../../src/native/index.js';
import { NATIVE_INDEX, rawPair, runScript, tempDir } from './support.js';
import { until } from '../support/until.js';

const tmp = tempDir();
test.after(() => tmp.done());
/** The read-ahead buffer's one owner in this process (a second is EBUSY). */
const owner = {};

test('readable and writable events; stop and close leave the fd open', async () => {
  const [a, b] = rawPair(tmp.path('watch.sock'));
  const events: number[] = [];
  const w = new FdWatcher(b, (ev) => events.push(ev));
  w.start(WRITABLE);
  await until(() => events.length > 0, 'writable');
  assert.equal(events[0], WRITABLE);
  w.start(READABLE);
  events.length = 0;
  sendmsg(a, new Uint8Array([1]));
  await until(() => events.length > 0, 'readable');
  assert.equal(events[0], READABLE);
  w.stop();
  events.length = 0;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(events.length, 0, 'level-triggered, but stopped');
  w.close();
  w.close();
  assert.throws(
    () => w.start(READABLE),
    (e: unknown) => e instanceof VfioError && e.code === 'EBADF',
  );
  assert.equal(recvmsg(b, new Uint8Array(1)), 1, 'the fd is still open and the byte waiting');
  close(a);
  close(b);
});

test('read-ahead: the watcher makes the first read, into the shared buffer, with its fds, EOF and errors', async () => {
  const [a, b] = rawPair(tmp.path('ahead.sock'));
  const rx = new Uint8Array(8);
  setReadAheadBuffer(owner, rx);
  assert.throws(
    () => setReadAheadBuffer({}, rx),
    (e: unknown) => e instanceof VfioError && e.code === 'EBUSY',
    'another owner may not set it',
  );
  assert.throws(
    () => setReadAheadBuffer(owner, new Uint8Array(0)),
    (e: unknown) => e instanceof VfioError && e.code === 'EINVAL',
    'an empty buffer would make every read-ahead look like EOF',
  );
  type Seen = { received: number | undefined; extra: number[] | Error | undefined; bytes: number[] };
  const seen: Seen[] = [];
  const w = new FdWatcher(b, (_events, received, extra) => {
    seen.push({ received, extra, bytes: received !== undefined && received > 0 ? [...rx.subarray(0, received)] : [] });
  });
  const next = async (what: string): Promise<Seen> => {
    await until(() => seen.length > 0, what);
    return seen.shift()!;
  };
  try {
    w.readAhead(4);
    w.start(READABLE);
    const efd = eventfd();
    sendmsg(a, new Uint8Array([1, 2, 3, 4, 5, 6]), [efd]);
    close(efd);
    const first = await next('the first read-ahead');
    assert.equal(first.received, 4, 'at most readAhead bytes');
    assert.deepEqual(first.bytes, [1, 2, 3, 4]);
    assert.ok(Array.isArray(first.extra) && first.extra.length === 1, 'the fd that came with them');
    eventfdWrite(first.extra[0]!, 1);
    close(first.extra[0]!);
    const second = await next('the rest, on the next event (level-triggered)');
    assert.deepEqual([second.received, second.bytes, second.extra], [2, [5, 6], undefined]);

    w.readAhead(0);
    sendmsg(a, new Uint8Array([9]));
    assert.equal((await next('no read-ahead')).received, undefined, 'readAhead(0): the owner reads');
    assert.equal(recvmsg(b, new Uint8Array(4)), 1);
    w.readAhead(4);
    setReadAheadBuffer(owner, null);
    sendmsg(a, new Uint8Array([7]));
    assert.equal((await next('no buffer')).received, undefined, 'without a buffer nothing is read ahead');
    assert.equal(recvmsg(b, new Uint8Array(4)), 1);
    setReadAheadBuffer(owner, rx);

    // The peer closes with our bytes unread: the next read fails with ECONNRESET (then libuv stops the poll).
    sendmsg(b, new Uint8Array([1]));
    close(a);
    const failed = await next('the error');
    assert.equal(failed.received, -1);
    assert.ok(failed.extra instanceof VfioError && failed.extra.code === 'ECONNRESET', String(failed.extra));
  } finally {
    w.close();
    close(b);
  }
  const [c, d] = rawPair(tmp.path('ahead-eof.sock'));
  const eof = new FdWatcher(d, (_events, received) => seen.push({ received, extra: undefined, bytes: [] }));
  try {
    eof.readAhead(4);
    eof.start(READABLE);
    close(c);
    assert.equal((await next('EOF')).received, 0, 'end of stream reads as 0');
  } finally {
    eof.close();
    close(d);
    setReadAheadBuffer(owner, null);
  }
});

test('one watcher per fd; bad arguments are EINVAL', () => {
  const fd = eventfd();
  const w = new FdWatcher(fd, () => {});
  assert.throws(
    () => new FdWatcher(fd, () => {}),
    (e: unknown) => e instanceof VfioError && e.code === 'EEXIST',
  );
  assert.throws(
    () => new FdWatcher(fd, 'x' as unknown as () => void),
    (e: unknown) => e instanceof VfioError && e.code === 'EINVAL',
  );
  w.close();
  close(fd);
});

/**
 * Makes a watcher on `fd`, started and stopped, that nobody keeps (only
 * `keep` of it), then collects garbage until the fd can be watched again:
 * its watcher was freed. Returns what `keep` took and the new watcher.
 */
async function forgetWatcher<T>(fd: number, keep: (w: FdWatcher) => T): Promise<{ kept: T; again: FdWatcher }> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const kept = (() => {
    const w = new FdWatcher(fd, () => {});
    w.start(READABLE);
    w.stop();
    return keep(w);
  })();
  let again: FdWatcher | undefined;
  await until(() => {
    gc();
    try {
      again = new FdWatcher(fd, () => {});
    } catch {
      // Not collected yet.
    }
    return again !== undefined;
  }, 'the forgotten watcher to be collected');
  return { kept, again: again! };
}

test('a stopped watcher nobody closed is freed by GC, releasing its fd', async () => {
  const fd = eventfd();
  const { again } = await forgetWatcher(fd, () => undefined);
  again.close();
  close(fd);
});

test('a linger function kept after its watcher was collected still answers, false', async () => {
  const fd = eventfd();
  const { kept: linger, again } = await forgetWatcher(fd, (w) => w.linger);
  // Its Watcher lives on with the function: closed, so no wait and no read.
  assert.equal(linger(), false);
  again.close();
  close(fd);
});

test('microtasks and nextTicks run in the turn of the callback, before any setImmediate, with no other event to come', async () => {
  const fds = [eventfd(0, { nonblock: true }), eventfd(0, { nonblock: true })];
  const order: string[] = [];
  const watchers = fds.map(
    (fd, i) =>
      new FdWatcher(fd, () => {
        eventfdRead(fd);
        watchers[i]!.stop();
        order.push(`callback${i}`);
        void Promise.resolve().then(() => order.push(`microtask${i}`));
        process.nextTick(() => order.push(`tick${i}`));
        setImmediate(() => order.push(`immediate${i}`));
      }),
  );
  for (const w of watchers) w.start(READABLE);
  // Both ready in one turn of the loop: both callbacks run in its poll phase.
  for (const fd of fds) eventfdWrite(fd);
  await until(() => order.length === 8, 'all eight');
  assert.deepEqual(order.slice(0, 6).sort(), ['callback0', 'callback1', 'microtask0', 'microtask1', 'tick0', 'tick1']);
  for (const i of [0, 1]) assert.ok(order.indexOf(`callback${i}`) < Math.min(order.indexOf(`microtask${i}`), order.indexOf(`tick${i}`)));
  assert.deepEqual(order.slice(6).sort(), ['immediate0', 'immediate1'], 'ticks and microtasks ran before the loop moved on');
  for (const w of watchers) w.close();
  for (const fd of fds) close(fd);
});

test('a throw in the callback is an uncaught exception', () => {
  const r = runScript(`
    import { eventfd, eventfdWrite, FdWatcher, READABLE } from '${NATIVE_INDEX}';
    process.on('uncaughtException', (err) => { console.log('caught:' + err.message); process.exit(3); });
    const fd = eventfd();
    new FdWatcher(fd, () => { throw new Error('boom'); }).start(READABLE);
    eventfdWrite(fd);
  `);
  assert.equal(r.stdout.trim(), 'caught:boom', r.stderr);
  assert.equal(r.status, 3);
});

test('an active watcher keeps the process alive unless unref; a stopped one does not', () => {
  const script = (body: string) => `
    import { eventfd, FdWatcher, READABLE } from '${NATIVE_INDEX}';
    const w = new FdWatcher(eventfd(), () => {});
    ${body}
    console.log('end of script');
  `;
  const unref = runScript(script('w.start(READABLE); w.unref();'), 5000);
  assert.equal(unref.status, 0, unref.stderr);
  const stopped = runScript(script('w.start(READABLE); w.stop();'), 5000);
  assert.equal(stopped.status, 0, stopped.stderr);
  const active = runScript(script('w.start(READABLE); setTimeout(() => { console.log("alive"); process.exit(0); }, 200).unref();'), 5000);
  assert.match(active.stdout, /alive/, "the ref'd watcher kept the loop running");
});

/**
 * A peer in a process of its own on fd 3 of a socket pair: it sends byte
 * 0, and answers each byte b it receives with b + 1 until b reaches
 * `last`, then closes. Its next message exists only once ours reached it.
 */
function pingPongPeer(last: number): { fd: number; child: ChildProcess } {
  const [ours, theirs] = socketPair();
  const peer =
    "const s = new (require('node:net').Socket)({ fd: 3, readable: true, writable: true });" +
    `s.on('data', (d) => { for (const b of d) { if (b >= ${last}) { s.end(); return; } s.write(Buffer.from([b + 1])); } });` +
    's.write(Buffer.from([0]));';
  const child = spawn(process.execPath, ['-e', peer], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
  close(theirs);
  return { fd: ours, child };
}

/**
 * Serves a ping-pong peer from the watcher's callback: each byte is
 * answered through `answer`, then the callback lingers for the next
 * (through `linger`, by default the watcher's linger()). Resolves with how
 * many bytes came through linger() and how many through a callback, once
 * the peer has closed.
 */
function servePingPong(
  last: number,
  answer: (fd: number, byte: number) => void,
  linger: (w: FdWatcher) => ReturnType<FdWatcher['linger']> = (w) => w.linger(),
): Promise<{ lingered: number; events: number }> {
  const { fd, child } = pingPongPeer(last);
  const rx = new Uint8Array(16);
  return new Promise((resolve, reject) => {
    let lingered = 0;
    let events = 0;
    const done = (): void => {
      w.close();
      close(fd);
      child.once('exit', () => resolve({ lingered, events }));
      if (child.exitCode !== null) resolve({ lingered, events });
    };
    const take = (n: number): boolean => {
      if (n === 0) {
        done();
        return false;
      }
      for (let i = 0; i < n; i++) answer(fd, rx[i]!);
      return true;
    };
    const w = new FdWatcher(fd, () => {
      events++;
      try {
        const n = recvmsg(fd, rx);
        if (n < 0 || !take(n)) return;
        for (;;) {
          const r = linger(w);
          if (r === false) return;
          assert.equal(r, true, 'no read-ahead: linger only says the fd is readable');
          const m = recvmsg(fd, rx);
          if (m < 0) continue;
          lingered++;
          if (!take(m)) return;
        }
      } catch (err) {
        reject(err);
      }
    });
    w.start(READABLE);
  });
}

test('linger: the next message of a ping-pong peer is read in the same callback, without a turn of the loop', { timeout: 20_000 }, async () => {
  const { lingered, events } = await servePingPong(50, (fd, b) => sendmsg(fd, new Uint8Array([b])));
  assert.ok(lingered >= 40, `${lingered} of 51 messages came through linger, ${events} through callbacks`);
});

test(
  'linger: the microtasks and nextTicks the callback left run before it waits (or the peer would wait for them forever)',
  { timeout: 20_000 },
  async () => {
    const answer = (fd: number, b: number): void => {
      const send = (): number => sendmsg(fd, new Uint8Array([b]));
      if (b % 2 === 0) queueMicrotask(send);
      else process.nextTick(send);
    };
    const { lingered } = await servePingPong(30, answer);
    assert.ok(lingered >= 20, `${lingered} of 31 messages came through linger`);
  },
);

test('linger(true) leaves the pending work to its caller: runPendingWork first serves the same peer', { timeout: 20_000 }, async () => {
  assert.equal(runPendingWork(), true, 'this Node has runNextTicks (process._tickCallback)');
  const answer = (fd: number, b: number): void => {
    const send = (): number => sendmsg(fd, new Uint8Array([b]));
    if (b % 2 === 0) queueMicrotask(send);
    else process.nextTick(send);
  };
  const { lingered } = await servePingPong(30, answer, (w) => w.linger(runPendingWork()));
  assert.ok(lingered >= 20, `${lingered} of 31 messages came through linger`);
  // And linger(true) itself runs none of it: a microtask left by the
  // callback runs only after the wait (ended here by a timer).
  const [a, b] = rawPair(tmp.path('linger-true.sock'));
  const order: string[] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const w = new FdWatcher(b, () => {
    recvmsg(b, new Uint8Array(8));
    setTimeout(() => {}, 20);
    queueMicrotask(() => order.push('microtask'));
    order.push(`linger(true) ${String(w.linger(true))}`);
    queueMicrotask(() => order.push('microtask'));
    order.push(`linger() ${String(w.linger())}`);
    w.stop();
    done();
  });
  try {
    w.start(READABLE);
    sendmsg(a, new Uint8Array([1]));
    await finished;
    assert.deepEqual(order, ['linger(true) false', 'microtask', 'microtask', 'linger() false']);
  } finally {
    w.close();
    close(a);
    close(b);
  }
});

test('linger: false once the loop has other work (a timer due, another fd ready), at once when not reading', { timeout: 20_000 }, async () => {
  const [a, b] = rawPair(tmp.path('linger-busy.sock'));
  const other = eventfd();
  const otherWatcher = new FdWatcher(other, () => eventfdRead(other));
  const results: Array<{ r: unknown; ms: number }> = [];
  // Each linger's result is awaited through the callback itself, not
  // until(): its immediates would be the loop's work that ends the wait.
  let lingered: () => void = () => {};
  const nextLinger = (): Promise<void> => new Promise((resolve) => (lingered = resolve));
  let phase = 0;
  let timer: Promise<unknown> = Promise.resolve();
  const w = new FdWatcher(b, () => {
    recvmsg(b, new Uint8Array(8));
    const t0 = performance.now();
    if (phase === 0) timer = new Promise((resolve) => setTimeout(resolve, 30));
    if (phase === 1) eventfdWrite(other, 1);
    if (phase === 2) w.start(WRITABLE); // not reading any more
    results.push({ r: w.linger(), ms: performance.now() - t0 });
    if (phase === 2) w.stop();
    lingered();
  });
  try {
    w.start(READABLE);
    otherWatcher.start(READABLE);
    // A timer set in the callback, due in 30 ms: the wait ends for it.
    phase = 0;
    let linger = nextLinger();
    sendmsg(a, new Uint8Array([1]));
    await linger;
    await timer;
    assert.ok(results[0]!.ms >= 20, `the first linger came back after ${results[0]!.ms.toFixed(1)} ms, before its timer`);
    // Another fd made readable in the callback: the loop must serve it.
    phase = 1;
    linger = nextLinger();
    sendmsg(a, new Uint8Array([2]));
    await linger;
    // Watching for WRITABLE only.
    phase = 2;
    linger = nextLinger();
    sendmsg(a, new Uint8Array([3]));
    await linger;
    for (const [i, { r, ms }] of results.entries()) {
      assert.equal(r, false, `linger ${i} said the loop's turn`);
      assert.ok(ms < 1000, `linger ${i} came back after ${ms.toFixed(1)} ms`);
    }
  } finally {
    w.close();
    otherWatcher.close();
    close(a);
    close(b);
    close(other);
  }
});

test(
  "linger: false at once when a watcher started in the same turn has its fd ready (not yet in the loop's epoll set)",
  { timeout: 20_000 },
  async () => {
    const [a, b] = rawPair(tmp.path('linger-new-watcher.sock'));
    const other = eventfd();
    eventfdWrite(other, 1); // ready before anyone watches it
    let result: { r: unknown; ms: number } | undefined;
    // Settled from the callbacks: no immediates or short timers pending (as
    // until() would leave), which would end the wait for their own sake.
    let otherSeen!: () => void;
    const seen = new Promise<void>((resolve) => (otherSeen = resolve));
    const otherWatcher = new FdWatcher(other, () => {
      eventfdRead(other);
      otherSeen();
    });
    const w = new FdWatcher(b, () => {
      recvmsg(b, new Uint8Array(8));
      otherWatcher.start(READABLE);
      const t0 = performance.now();
      result = { r: w.linger(), ms: performance.now() - t0 };
    });
    // Ends a linger that missed the new watcher, so the test fails rather than hangs.
    const rescue = setTimeout(() => {}, 3000);
    try {
      w.start(READABLE);
      sendmsg(a, new Uint8Array([1]));
      await seen;
      assert.ok(result !== undefined, 'the socket was served first');
      assert.equal(result.r, false, "linger said the loop's turn");
      assert.ok(result.ms < 1000, `linger came back after ${result.ms.toFixed(1)} ms`);
    } finally {
      clearTimeout(rescue);
      w.close();
      otherWatcher.close();
      close(a);
      close(b);
      close(other);
    }
  },
);

test('linger with read-ahead returns what the callback would get: the count, with fds as [count, fds], EOF as 0', { timeout: 20_000 }, async () => {
  const rx = new Uint8Array(16);
  setReadAheadBuffer(owner, rx);
  const { fd, child } = pingPongPeer(20);
  const got: number[] = [];
  let lingered = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const w = new FdWatcher(fd, (_events, received) => {
        try {
          let n: unknown = received;
          for (;;) {
            if (n === 0) {
              w.close();
              resolve();
              return;
            }
            assert.equal(typeof n, 'number');
            for (let i = 0; i < (n as number); i++) got.push(rx[i]!);
            sendmsg(fd, rx.subarray(0, n as number));
            n = w.linger();
            if (n === false) return;
            lingered++;
          }
        } catch (err) {
          reject(err);
        }
      });
      w.readAhead(rx.length);
      w.start(READABLE);
    });
  } finally {
    close(fd);
    setReadAheadBuffer(owner, null);
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
  assert.deepEqual(
    got,
    Array.from({ length: 21 }, (_, i) => i),
  );
  assert.ok(lingered >= 15, `${lingered} reads through linger`);
});
