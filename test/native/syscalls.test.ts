import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { VfioError } from '../../src/base/errors.js';
import {
  acceptUnix,
  close,
  connectUnix,
  dup,
  eventfd,
  eventfdRead,
  eventfdWrite,
  listenUnix,
  memfdCreate,
  mmap,
  munmap,
  openFdCount,
  peerCredentials,
  recvmsg,
  sendmsg,
  sendmsg2,
  sendmsgWait,
  recvmsgWait,
} from '../../src/native/index.js';
import { rawPair, tempDir } from './support.js';

const tmp = tempDir();
after(() => tmp.done());

function isCode(code: string, syscall?: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code && (syscall === undefined || e.message.includes(syscall));
}

test('listen, connect, accept: a 0600 socket, EAGAIN as -1, EOF as 0', () => {
  const before = openFdCount();
  const path = tmp.path('basic.sock');
  const listener = listenUnix(path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(acceptUnix(listener), -1, 'nobody connected yet');
  const client = connectUnix(path);
  const server = acceptUnix(listener);
  assert.ok(server >= 0);
  const buf = new Uint8Array(16);
  assert.equal(recvmsg(server, buf), -1, 'nothing sent yet');
  assert.equal(sendmsg(client, new Uint8Array([1, 2, 3])), 3);
  assert.equal(recvmsg(server, buf), 3);
  assert.deepEqual([...buf.subarray(0, 3)], [1, 2, 3]);
  close(client);
  assert.equal(recvmsg(server, buf), 0, 'EOF after the peer closed');
  close(server);
  close(listener);
  assert.equal(openFdCount(), before);
});

test('errors are VfioError naming the syscall', () => {
  const path = tmp.path('errors.sock');
  assert.throws(() => connectUnix(path), isCode('ENOENT', 'connect'));
  const listener = listenUnix(path);
  assert.throws(() => listenUnix(path), isCode('EADDRINUSE', 'bind'));
  close(listener);
  assert.throws(() => connectUnix(path), isCode('ECONNREFUSED', 'connect'), 'stale socket file');
  assert.throws(() => listenUnix(tmp.path('x'.repeat(120))), isCode('EINVAL'), 'path longer than sun_path');
  assert.throws(() => listenUnix(''), isCode('EINVAL'));
  assert.throws(() => close(1 << 20), isCode('EBADF', 'close'));
  assert.throws(() => sendmsg(1.5, new Uint8Array(1)), isCode('EINVAL'), 'fd not an integer');
  assert.throws(() => sendmsg(0, 'nope' as unknown as Uint8Array), isCode('EINVAL'));
  const file = tmp.path('not-a-socket');
  writeFileSync(file, 'x');
  assert.throws(() => connectUnix(file), isCode('ECONNREFUSED'));
});

test('fds travel both ways: an eventfd one way, a memfd the other, mapped on arrival', () => {
  const before = openFdCount();
  const [a, b] = rawPair(tmp.path('pass.sock'));
  const efd = eventfd(0, { nonblock: true });
  assert.equal(sendmsg(a, new Uint8Array([7]), [efd]), 1);
  const got: number[] = [];
  const buf = new Uint8Array(8);
  assert.equal(recvmsg(b, buf, got), 1);
  assert.equal(got.length, 1);
  assert.notEqual(got[0], efd);
  eventfdWrite(got[0]!, 5n);
  assert.equal(eventfdRead(efd), 5n, 'the received fd is the same eventfd');

  const mfd = memfdCreate('uvfio-pass', 4096);
  assert.equal(sendmsg(b, new Uint8Array([8]), [mfd]), 1);
  const back: number[] = [];
  assert.equal(recvmsg(a, buf, back), 1);
  const mine = mmap(mfd, 0, 4096, { read: true, write: true });
  const theirs = mmap(back[0]!, 0, 4096, { read: true, write: true });
  new Uint8Array(mine)[100] = 0xab;
  assert.equal(new Uint8Array(theirs)[100], 0xab, 'both mappings share the pages');
  munmap(mine);
  munmap(theirs);
  for (const fd of [a, b, efd, mfd, got[0]!, back[0]!]) close(fd);
  assert.equal(openFdCount(), before);
});

test('253 fds in one message; received fds are closed when nobody takes them', () => {
  const before = openFdCount();
  const [a, b] = rawPair(tmp.path('many.sock'));
  const efd = eventfd();
  const fds = new Array<number>(253).fill(efd);
  assert.equal(sendmsg(a, new Uint8Array([1, 2]), fds), 2);
  const got: number[] = [];
  assert.equal(recvmsg(b, new Uint8Array(4), got), 2);
  assert.equal(got.length, 253);
  for (const fd of got) close(fd);
  assert.throws(() => sendmsg(a, new Uint8Array(1), new Array<number>(254).fill(efd)), isCode('EINVAL'));

  sendmsg(a, new Uint8Array([3]), [efd, efd, efd]);
  const mid = openFdCount();
  assert.equal(recvmsg(b, new Uint8Array(4)), 1);
  assert.equal(openFdCount(), mid, 'no fdsOut: the 3 arrivals were closed');
  for (const fd of [a, b, efd]) close(fd);
  assert.equal(openFdCount(), before);
});

test('fds need a byte to travel with; fdsOut must be an array (checked before reading)', () => {
  const [a, b] = rawPair(tmp.path('args.sock'));
  const efd = eventfd();
  assert.throws(() => sendmsg(a, new Uint8Array(0), [efd]), isCode('EINVAL'));
  sendmsg(a, new Uint8Array([9]));
  assert.throws(() => recvmsg(b, new Uint8Array(4), {} as unknown as number[]), isCode('EINVAL'));
  assert.throws(() => recvmsg(b, new Uint8Array(0)), isCode('EINVAL'), 'an empty buffer would read as EOF');
  const buf = new Uint8Array(4);
  assert.equal(recvmsg(b, buf), 1, 'the byte was not consumed by the refused calls');
  assert.equal(buf[0], 9);
  for (const fd of [a, b, efd]) close(fd);
});

test('sendmsg fills the socket, returns a partial count, then -1; sendmsg2 joins two buffers', () => {
  const [a, b] = rawPair(tmp.path('full.sock'));
  const chunk = new Uint8Array(1 << 20);
  let sent = 0;
  let partial = false;
  for (let i = 0; i < 256; i++) {
    const n = sendmsg(a, chunk);
    if (n < 0) break;
    if (n < chunk.length) partial = true;
    sent += n;
  }
  assert.equal(sendmsg(a, chunk), -1, 'full socket says EAGAIN as -1');
  assert.ok(partial && sent > 0 && sent < 256 << 20);
  const sink = new Uint8Array(1 << 20);
  let drained = 0;
  for (let n = recvmsg(b, sink); n > 0; n = recvmsg(b, sink)) drained += n;
  assert.equal(drained, sent);

  const head = new Uint8Array([1, 2, 3]);
  const body = new DataView(new Uint8Array([4, 5]).buffer);
  assert.equal(sendmsg2(a, head, body), 5);
  const buf = new Uint8Array(8);
  assert.equal(recvmsg(b, buf), 5);
  assert.deepEqual([...buf.subarray(0, 5)], [1, 2, 3, 4, 5]);
  close(a);
  close(b);
});

test('sendmsgWait: a peer that never reads holds it for its budget, then it says what went; the fd stays nonblocking', () => {
  const [a, b] = rawPair(tmp.path('wait.sock'));
  const head = new Uint8Array(32).fill(7);
  const body = new Uint8Array(8 << 20).fill(9);
  const t0 = performance.now();
  const n = sendmsgWait(a, head, body, 20_000);
  const ms = performance.now() - t0;
  assert.ok(n > 0 && n < head.length + body.length, `a part went (${n} bytes)`);
  // The budget and at most a scheduler tick more (4 ms at HZ=250); the rest is a loaded machine's slack.
  assert.ok(ms >= 19 && ms < 1000, `waited ${ms.toFixed(1)} ms for a 20 ms budget`);
  assert.equal(sendmsg(a, new Uint8Array(1 << 20)), -1, 'nonblocking again: a full socket says -1 at once');
  assert.equal(sendmsgWait(a, head, body, 1000), -1, 'nothing went within the budget: -1');
  const sink = new Uint8Array(1 << 20);
  let drained = 0;
  for (let r = recvmsg(b, sink); r > 0; r = recvmsg(b, sink)) drained += r;
  assert.equal(drained, n, 'what it said went is what arrived');
  assert.throws(() => sendmsgWait(a, head, body, 0), isCode('EINVAL'));
  close(b);
  assert.throws(() => sendmsgWait(a, head, body, 1000), isCode('EPIPE', 'sendmsg'));
  close(a);
});

test('recvmsgWait: a peer that stops writing holds it for its budget, then it says what came; fds and EOF end it early', () => {
  const [a, b] = rawPair(tmp.path('rwait.sock'));
  const into = new Uint8Array(256 * 1024);
  const fds: number[] = [];
  sendmsg(a, new Uint8Array(1000).fill(3));
  const t0 = performance.now();
  const n = recvmsgWait(b, into, 20_000, fds);
  const ms = performance.now() - t0;
  assert.equal(n, 1000, 'what came');
  assert.ok(into.subarray(0, 1000).every((x) => x === 3));
  // The budget and at most a scheduler tick more (4 ms at HZ=250); the rest is a loaded machine's slack.
  assert.ok(ms >= 19 && ms < 1000, `waited ${ms.toFixed(1)} ms for a 20 ms budget`);
  assert.equal(recvmsg(b, into), -1, 'nonblocking again: an empty socket says -1 at once');
  assert.equal(recvmsgWait(b, into, 1000, fds), -1, 'nothing came within the budget: -1');
  // Whole at once when it is all there; fds end the read at their write, and are the caller's.
  const whole = into.subarray(0, 128 * 1024);
  assert.equal(sendmsg(a, new Uint8Array(whole.length).fill(4)), whole.length);
  assert.equal(recvmsgWait(b, whole, 1_000_000, fds), whole.length);
  const [x, y] = rawPair(tmp.path('rwait-fds.sock'));
  sendmsg(a, new Uint8Array(10).fill(5), [x]);
  sendmsg(a, new Uint8Array(10).fill(6));
  assert.equal(recvmsgWait(b, into, 1_000_000, fds), 10, 'up to the write the fds came with');
  assert.equal(fds.length, 1);
  close(fds.pop()!);
  assert.equal(recvmsgWait(b, into, 1_000_000, fds), 10);
  assert.throws(() => recvmsgWait(b, into, 0, fds), isCode('EINVAL'));
  close(a);
  assert.equal(recvmsgWait(b, into, 1_000_000, fds), 0, 'EOF');
  close(b);
  close(x);
  close(y);
});

test('peer gone: sendmsg reports EPIPE, not a signal', () => {
  const [a, b] = rawPair(tmp.path('pipe.sock'));
  close(b);
  assert.throws(() => sendmsg(a, new Uint8Array(1)), isCode('EPIPE', 'sendmsg'));
  close(a);
});

test('dup gives an independent CLOEXEC fd', () => {
  const efd = eventfd(3, { nonblock: true });
  const copy = dup(efd);
  assert.notEqual(copy, efd);
  close(efd);
  assert.equal(eventfdRead(copy), 3n);
  close(copy);
  assert.throws(() => dup(1 << 20), isCode('EBADF', 'dup'));
});

test('peerCredentials: the pid, uid and gid of the connected process, from either end', () => {
  const [client, server] = rawPair(tmp.path('cred.sock'));
  const mine = [process.pid, process.getuid!(), process.getgid!()];
  assert.deepEqual(peerCredentials(server), mine);
  assert.deepEqual(peerCredentials(client), mine);
  close(client);
  close(server);
  const memfd = memfdCreate('not-a-socket', 0);
  assert.throws(
    () => peerCredentials(memfd),
    (e: unknown) => e instanceof VfioError && /SO_PEERCRED/.test(e.message),
  );
  close(memfd);
  assert.throws(() => peerCredentials(memfd), isCode('EBADF'));
});
