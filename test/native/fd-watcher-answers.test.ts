/**
 * FdWatcher answers (answer(), linger's answerReads): region accesses of
 * plain memory answered in the native layer. Each test writes requests to
 * the peer end of a socket pair from the watcher's own callback, then
 * lingers once and looks at what came back: the replies on the wire, the
 * memory, the stats, and what was left to the caller at the read-ahead
 * buffer's start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { AnswerStat, close, FdWatcher, READABLE, recvmsg, sendmsg, setReadAheadBuffer, type AnswerRegion } from '../../src/native/index.js';
import { rawPair, tempDir } from './support.js';
import { concat } from '../vfio-user/harness.js';
import { until } from '../support/until.js';

const tmp = tempDir();
test.after(() => tmp.done());

const owner = {};
const rx = new Uint8Array(64 * 1024);
setReadAheadBuffer(owner, rx);

const READ = 9;
const WRITE = 10;
const NO_REPLY = 0x10;

/** One request: header {msgId, cmd, size, flags, 0}, access {offset, region, count}, then `data`. */
function request(msgId: number, cmd: number, region: number, offset: number, count: number, data?: Uint8Array, flags = 0): Uint8Array {
  const size = 32 + (data?.length ?? 0);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint16(0, msgId, true);
  v.setUint16(2, cmd, true);
  v.setUint32(4, size, true);
  v.setUint32(8, flags, true);
  v.setBigUint64(16, BigInt(offset), true);
  v.setUint32(24, region, true);
  v.setUint32(28, count, true);
  if (data) b.set(data, 32);
  return b;
}

/** The reply the session would send: the access echoed, a read's data after it. */
function reply(msgId: number, cmd: number, region: number, offset: number, count: number, data?: Uint8Array): Uint8Array {
  const b = request(msgId, cmd, region, offset, count, data);
  new DataView(b.buffer).setUint32(8, 1, true);
  return b;
}

/** Everything readable on `fd` now. */
function drain(fd: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(256 * 1024);
  for (;;) {
    const n = recvmsg(fd, buf);
    if (n <= 0) break;
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

interface Lingered {
  result: ReturnType<FdWatcher['linger']>;
  stats: number[];
  /** The bytes left at the buffer's start, when the result is a count. */
  left: Uint8Array;
  unsent: Uint8Array;
}

/**
 * Sends a kick byte; in the callback it took, writes `requests` (with
 * `fds`) to the peer, then lingers once with `reads` answer reads. A timer
 * bounds the wait that follows the answers. A linger that found the loop
 * with work of its own (the test runner's immediates: by design it then
 * waits for nothing) is tried again from the next readable event, with
 * read-ahead off so that the requests stay where they are.
 */
async function lingerOnce(
  regions: Array<AnswerRegion | undefined>,
  requests: Uint8Array,
  options: { reads?: number; maxCount?: number; closePeer?: boolean; peerFds?: number[]; off?: boolean } = {},
): Promise<Lingered & { replies: Uint8Array }> {
  const [peer, ours] = rawPair(tmp.path(`answer-${Math.random().toString(36).slice(2)}.sock`));
  const stats = new Float64Array(AnswerStat.COUNT);
  let done: (l: Lingered) => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const finished = new Promise<Lingered>((resolve, reject) => ((done = resolve), (fail = reject)));
  let sent = false;
  let tries = 0;
  const w = new FdWatcher(ours, (_events, received) => {
    if (!sent) {
      if (received !== 1) return fail(new Error(`the kick byte, not ${String(received)} bytes`));
      sent = true;
      if (requests.length > 0) sendmsg(peer, requests, options.peerFds);
      if (options.closePeer) close(peer);
    }
    w.readAhead(rx.length);
    const timer = setTimeout(() => {}, 50);
    const result = w.linger(true, options.reads ?? 1);
    clearTimeout(timer);
    if (result === false && stats[AnswerStat.MESSAGES_IN] === 0 && ++tries < 50) {
      w.readAhead(0);
      return;
    }
    const left =
      typeof result === 'number' && result > 0
        ? rx.slice(0, result)
        : Array.isArray(result) && result[0] > 0
          ? rx.slice(0, result[0])
          : new Uint8Array(0);
    const l: Lingered = { result, stats: [...stats], left, unsent: stats[AnswerStat.UNSENT]! > 0 ? w.takeUnsent() : new Uint8Array(0) };
    w.stop();
    done(l);
  });
  w.readAhead(1);
  w.answer(stats, options.maxCount ?? 64 * 1024, regions);
  if (options.off) w.answer(null);
  w.start(READABLE);
  try {
    sendmsg(peer, new Uint8Array([0]));
    const l = await finished;
    const replies = options.closePeer ? new Uint8Array(0) : drain(peer);
    return { ...l, replies };
  } finally {
    w.close();
    close(ours);
    if (!options.closePeer) close(peer);
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('reads, writes and posted writes of plain memory are answered in order, with no call into JavaScript', async () => {
  const mem = pattern(4096, 1);
  const before = mem.slice();
  const data = pattern(8, 7);
  const requests = concat([
    request(1, READ, 0, 16, 4),
    request(2, WRITE, 0, 100, 8, data),
    request(3, READ, 0, 96, 16),
    request(4, WRITE, 0, 0, 2, new Uint8Array([0xaa, 0xbb]), NO_REPLY),
    request(5, READ, 0, 0, 4),
  ]);
  const l = await lingerOnce([{ read: mem, write: mem }], requests);
  assert.equal(l.result, null, 'its one read was answered whole');
  const after = before.slice();
  after.set(data, 100);
  after.set([0xaa, 0xbb], 0);
  assert.deepEqual(mem, after);
  const expected = concat([
    reply(1, READ, 0, 16, 4, before.subarray(16, 20)),
    reply(2, WRITE, 0, 100, 8),
    reply(3, READ, 0, 96, 16, after.subarray(96, 112)),
    reply(5, READ, 0, 0, 4, after.subarray(0, 4)),
  ]);
  assert.deepEqual(l.replies, expected);
  assert.deepEqual(l.stats, [1, 5, requests.length, 4, expected.length, 0, 0, 0, 0]);
});

test('the first message it does not take, and everything after it, is left at the buffer start', async () => {
  const mem = pattern(4096, 2);
  const other = new Uint8Array(24);
  new DataView(other.buffer).setUint16(2, 4, true); // GET_INFO, 24 bytes
  new DataView(other.buffer).setUint32(4, 24, true);
  const after = request(3, READ, 0, 0, 4);
  const l = await lingerOnce([{ read: mem, write: null }], concat([request(1, READ, 0, 8, 4), other, after]));
  assert.equal(l.result, other.length + after.length);
  assert.deepEqual(l.left, concat([other, after]), 'in order, from the first message not answered');
  assert.deepEqual(l.replies, reply(1, READ, 0, 8, 4, mem.subarray(8, 12)));
  assert.deepEqual(l.stats.slice(0, 2), [0, 1], 'one message answered, no read answered whole');
});

test('every access it does not take exactly as it is goes to the caller untouched', async () => {
  const mem = pattern(4096, 3);
  const rom = pattern(1024, 4);
  const regions = [{ read: mem, write: mem }, undefined, { read: rom, write: null }];
  const cases: Array<[string, Uint8Array]> = [
    ['a 0-byte read', request(1, READ, 0, 0, 0)],
    ['a read over maxCount', request(1, READ, 0, 0, 2048)],
    ['a read past the end', request(1, READ, 0, 4094, 4)],
    ['a read at an offset beyond 2^32', request(1, READ, 0, 2 ** 32, 4)],
    ['a region without memory', request(1, READ, 1, 0, 4)],
    ['a region past the table', request(1, READ, 16, 0, 4)],
    ['a write to read-only memory', request(1, WRITE, 2, 0, 4, new Uint8Array(4))],
    ['a write whose size is not its count', request(1, WRITE, 0, 0, 4, new Uint8Array(6))],
    ['a read with data after it', request(1, READ, 0, 0, 4, new Uint8Array(4))],
    ['a reply, not a command', request(1, READ, 0, 0, 4, undefined, 1)],
    ['a command with ERROR', request(1, READ, 0, 0, 4, undefined, 0x20)],
    ['an unknown flag', request(1, READ, 0, 0, 4, undefined, 0x40)],
    ['a write not yet whole', request(1, WRITE, 0, 0, 64, new Uint8Array(64)).subarray(0, 60)],
    ['less than an access struct', request(1, READ, 0, 0, 4).subarray(0, 31)],
  ];
  for (const [what, bytes] of cases) {
    const snapshot = mem.slice();
    const l = await lingerOnce(regions, bytes, { maxCount: 1024 });
    assert.equal(l.result, bytes.length, what);
    assert.deepEqual(l.left, bytes, what);
    assert.equal(l.replies.length, 0, `${what}: no reply`);
    assert.deepEqual(mem, snapshot, `${what}: memory untouched`);
    assert.deepEqual(l.stats, [0, 0, 0, 0, 0, 0, 0, 0, 0], what);
  }
});

test('a read that brought fds is the caller’s, fds and all; without answerReads nothing is answered', async () => {
  const mem = pattern(64, 5);
  const req = request(1, READ, 0, 0, 4);
  const [x, y] = rawPair(tmp.path('fds.sock'));
  try {
    const l = await lingerOnce([{ read: mem, write: mem }], req, { peerFds: [x] });
    assert.ok(Array.isArray(l.result), 'count and fds');
    const [n, fds] = l.result as [number, number[]];
    assert.equal(n, req.length);
    assert.equal(fds.length, 1);
    close(fds[0]!);
    assert.equal(l.replies.length, 0);
  } finally {
    close(x);
    close(y);
  }
  const l = await lingerOnce([{ read: mem, write: mem }], req, { reads: 0 });
  assert.equal(l.result, req.length);
  assert.equal(l.replies.length, 0);
});

test('a reply the kernel takes in part: its rest is kept for takeUnsent and answering stops there', async () => {
  const mem = pattern(64 * 1024, 6);
  // Far more than the socket buffer holds, never read meanwhile.
  const reads = Array.from({ length: 40 }, (_, i) => request(i + 1, READ, 0, 0, 64 * 1024));
  const l = await lingerOnce([{ read: mem, write: null }], concat(reads), { reads: 4 });
  assert.equal(typeof l.result, 'number', `stopped with requests left: ${JSON.stringify(l.result)} ${JSON.stringify(l.stats)} ${l.replies.length}`);
  const answered = l.stats[AnswerStat.MESSAGES_IN]!;
  assert.ok(answered >= 1 && answered < 40, `${answered} answered`);
  assert.ok(l.unsent.length > 0, 'part of the last reply is unsent');
  assert.equal(l.result, (40 - answered) * 32, 'the rest of the requests are the caller’s');
  assert.deepEqual(l.left, concat(reads.slice(answered)));
  // What went out and what was kept make exactly the replies answered.
  const expected = concat(reads.slice(0, answered).map((_, i) => reply(i + 1, READ, 0, 0, 64 * 1024, mem)));
  assert.deepEqual(concat([l.replies, l.unsent]), expected);
});

test('a peer gone before its answer: the send error is the linger’s result', async () => {
  const mem = pattern(64, 7);
  const l = await lingerOnce([{ read: mem, write: mem }], request(1, READ, 0, 0, 4), { closePeer: true });
  assert.ok(Array.isArray(l.result));
  const [n, err] = l.result as [number, Error];
  assert.equal(n, -1);
  assert.ok(err instanceof VfioError && err.code === 'EPIPE', String(err));
});

test('answer() checks its arguments; answer(null) turns answering off', async () => {
  const [a, b] = rawPair(tmp.path('args.sock'));
  const w = new FdWatcher(b, () => {});
  try {
    const mem = new Uint8Array(16);
    assert.throws(() => w.answer(new Float64Array(2), 16, []), { code: 'EINVAL' });
    assert.throws(() => w.answer(new Uint32Array(6) as unknown as Float64Array, 16, []), { code: 'EINVAL' });
    assert.throws(() => w.answer(new Float64Array(AnswerStat.COUNT), -1, []), { code: 'EINVAL' });
    assert.throws(() => w.answer(new Float64Array(AnswerStat.COUNT), 16, new Array(17).fill(undefined)), { code: 'EINVAL' });
    assert.throws(() => w.answer(new Float64Array(AnswerStat.COUNT), 16, [5 as unknown as AnswerRegion]), { code: 'EINVAL' });
    w.answer(new Float64Array(AnswerStat.COUNT), 16, [{ read: mem, write: mem }]);
    w.answer(null);
    assert.equal(w.takeUnsent().length, 0);
    w.close();
    assert.throws(() => w.answer(null), { code: 'EBADF' });
  } finally {
    w.close();
    close(a);
    close(b);
  }
  const mem = pattern(64, 8);
  const req = request(1, READ, 0, 0, 4);
  const l = await lingerOnce([{ read: mem, write: mem }], req, { off: true });
  assert.equal(l.result, req.length, 'off: the request is the caller’s');
  assert.equal(l.replies.length, 0);
});

/** A watcher answering at readable events (eventReads 4) behind `blocker`; `calls` records what reached its callback. */
function eventAnswers(name: string, regions: Array<AnswerRegion | undefined>, maxCount = 64 * 1024) {
  const [peer, ours] = rawPair(tmp.path(`${name}.sock`));
  const stats = new Float64Array(AnswerStat.COUNT);
  const blocker = new Int32Array(1);
  const calls: Array<{ received: number | undefined; bytes: Uint8Array }> = [];
  const w = new FdWatcher(ours, (_events, received) => {
    calls.push({ received, bytes: typeof received === 'number' && received > 0 ? rx.slice(0, received) : new Uint8Array(0) });
  });
  w.readAhead(rx.length);
  w.answer(stats, maxCount, regions, [blocker], 4);
  w.start(READABLE);
  const replies = async (bytes: number): Promise<Uint8Array> => {
    const parts: Uint8Array[] = [];
    let got = 0;
    await until(() => {
      const chunk = drain(peer);
      parts.push(chunk);
      got += chunk.length;
      return got >= bytes;
    }, `${bytes} bytes of replies`);
    return concat(parts);
  };
  const done = (): void => {
    w.close();
    close(ours);
    close(peer);
  };
  return { peer, stats, blocker, calls, replies, done };
}

test('at a readable event, answers are made before any call into JavaScript, while no blocker is set', async () => {
  const mem = pattern(4096, 9);
  const e = eventAnswers('event', [{ read: mem, write: mem }]);
  try {
    sendmsg(e.peer, request(1, READ, 0, 64, 8));
    assert.deepEqual(await e.replies(40), reply(1, READ, 0, 64, 8, mem.subarray(64, 72)));
    sendmsg(e.peer, concat([request(2, WRITE, 0, 0, 4, new Uint8Array([1, 2, 3, 4]), NO_REPLY), request(3, READ, 0, 0, 4)]));
    assert.deepEqual(await e.replies(36), reply(3, READ, 0, 0, 4, new Uint8Array([1, 2, 3, 4])));
    assert.equal(e.calls.length, 0, 'no callback');
    assert.equal(e.stats[AnswerStat.MESSAGES_IN], 3);
    // Blocked: the request reaches the callback whole, unanswered.
    e.blocker[0] = 1;
    const blocked = request(4, READ, 0, 0, 4);
    sendmsg(e.peer, blocked);
    await until(() => e.calls.length === 1, 'the callback');
    assert.deepEqual(e.calls[0]!.bytes, blocked);
    assert.equal(drain(e.peer).length, 0, 'no reply');
    // Open again: what it does not take goes to the callback, after the answers before it.
    e.blocker[0] = 0;
    const other = request(6, 4, 0, 0, 0).subarray(0, 16);
    new DataView(other.buffer, other.byteOffset).setUint32(4, 16, true);
    sendmsg(e.peer, concat([request(5, READ, 0, 4, 4), other]));
    await until(() => e.calls.length === 2, 'the callback');
    assert.deepEqual(e.calls[1]!.bytes, other);
    assert.deepEqual(drain(e.peer), reply(5, READ, 0, 4, 4, mem.subarray(4, 8)));
  } finally {
    e.done();
  }
});

test('writes of 16 KiB or more that follow one another land in place; one cut short gives the callback its head and what landed', async () => {
  const mem = new Uint8Array(64 * 1024);
  const e = eventAnswers('place', [{ read: mem, write: mem }]);
  try {
    const first = pattern(20_000, 10);
    sendmsg(e.peer, request(1, WRITE, 0, 0, first.length, first));
    assert.deepEqual(await e.replies(32), reply(1, WRITE, 0, 0, first.length));
    assert.deepEqual(mem.subarray(0, first.length), first);
    // The next such write is read head first, its data received in place.
    const second = pattern(20_000, 11);
    sendmsg(e.peer, request(2, WRITE, 0, 30_000, second.length, second));
    assert.deepEqual(await e.replies(32), reply(2, WRITE, 0, 30_000, second.length));
    assert.deepEqual(mem.subarray(30_000, 50_000), second);
    assert.equal(e.calls.length, 0);
    // Cut short: what came of its data has landed, and the callback gets it all as one read.
    const third = pattern(20_000, 12);
    const whole = request(3, WRITE, 0, 1000, third.length, third);
    sendmsg(e.peer, whole.subarray(0, 32 + 8000));
    await until(() => e.calls.length === 1, 'the callback');
    assert.deepEqual(e.calls[0]!.bytes, whole.subarray(0, 32 + 8000));
    assert.deepEqual(mem.subarray(1000, 9000), third.subarray(0, 8000), 'landed as it came');
    assert.equal(drain(e.peer).length, 0, 'not answered');
  } finally {
    e.done();
  }
});

test('a placed write larger than one read: its data is waited for in place; what came of it by the end of the wait is told as landed', async () => {
  const mem = new Uint8Array(256 * 1024);
  const e = eventAnswers('place-large', [{ read: mem, write: mem }], 256 * 1024);
  try {
    const first = pattern(20_000, 13);
    sendmsg(e.peer, request(1, WRITE, 0, 0, first.length, first));
    assert.deepEqual(await e.replies(32), reply(1, WRITE, 0, 0, first.length));
    // 100 KiB, all there: received in place within the wait, answered.
    const second = pattern(100 * 1024, 14);
    sendmsg(e.peer, request(2, WRITE, 0, 4096, second.length, second));
    assert.deepEqual(await e.replies(32), reply(2, WRITE, 0, 4096, second.length));
    assert.deepEqual(mem.subarray(4096, 4096 + second.length), second);
    assert.equal(e.calls.length, 0);
    // Half of 100 KiB: the wait runs out; the callback gets the head, the stats what landed.
    const third = pattern(100 * 1024, 15);
    const whole = request(3, WRITE, 0, 128 * 1024, third.length, third);
    sendmsg(e.peer, whole.subarray(0, 32 + 50_000));
    await until(() => e.calls.length === 1, 'the callback');
    assert.deepEqual(e.calls[0]!.bytes, whole.subarray(0, 32), 'the head alone');
    assert.equal(e.stats[AnswerStat.LANDED], 50_000);
    assert.equal(e.stats[AnswerStat.LANDED_REGION], 0);
    assert.equal(e.stats[AnswerStat.LANDED_OFFSET], 128 * 1024, 'where it landed');
    assert.deepEqual(mem.subarray(128 * 1024, 128 * 1024 + 50_000), third.subarray(0, 50_000), 'landed in place');
    assert.equal(drain(e.peer).length, 0, 'not answered');
  } finally {
    e.done();
  }
});
