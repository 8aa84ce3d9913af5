import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { close, EventFd, eventfd, eventfdRead, eventfdWrite, openFdCount } from '../../src/native/index.js';
import { until } from '../support/until.js';

test('eventfd counter: read takes it all, null when 0, bigint and number writes', () => {
  const fd = eventfd(2, { nonblock: true });
  eventfdWrite(fd);
  eventfdWrite(fd, 10);
  eventfdWrite(fd, 2n ** 40n);
  assert.equal(eventfdRead(fd), 13n + 2n ** 40n);
  assert.equal(eventfdRead(fd), null);
  assert.throws(() => eventfdWrite(fd, -1), (e: unknown) => e instanceof VfioError && e.code === 'EINVAL');
  assert.throws(() => eventfdWrite(fd, 2n ** 64n), (e: unknown) => e instanceof VfioError && e.code === 'EINVAL');
  eventfdWrite(fd, 2n ** 64n - 2n);
  assert.throws(() => eventfdWrite(fd, 1), (e: unknown) => e instanceof VfioError && e.code === 'EAGAIN');
  close(fd);
});

test('semaphore mode takes one at a time', () => {
  const fd = eventfd(2, { nonblock: true, semaphore: true });
  assert.equal(eventfdRead(fd), 1n);
  assert.equal(eventfdRead(fd), 1n);
  assert.equal(eventfdRead(fd), null);
  close(fd);
});

test('EventFd.onSignal wakes on signal with the count, stops, closes', async () => {
  const before = openFdCount();
  const ev = EventFd.create();
  const seen: bigint[] = [];
  ev.onSignal((count) => seen.push(count));
  ev.signal(3);
  await until(() => seen.length === 1, 'the first signal');
  assert.deepEqual(seen, [3n]);
  ev.signal();
  await until(() => seen.length === 2, 'the second signal');
  ev.onSignal(null);
  ev.signal();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(seen.length, 2, 'stopped');
  assert.equal(ev.read(), 1n, 'the unseen signal is still counted');
  ev.close();
  ev.close();
  assert.equal(openFdCount(), before);
});

test('an adopted eventfd (as received from a client) is signalled across', async () => {
  const client = EventFd.create();
  const server = EventFd.adopt(eventfd()); // a blocking one, as a client may send
  let woke = 0n;
  server.onSignal((count) => (woke += count));
  server.signal(4);
  await until(() => woke === 4n, 'the adopted fd to wake');
  client.close();
  server.close();
});
