import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SetLock, SetLockToken } from '../../src/core/index.js';

test('a free lock runs a synchronous fn at once and returns its value, not a promise', () => {
  const lock = new SetLock();
  const v = lock.run(() => 42);
  assert.equal(v, 42);
  assert.equal(lock.idle, true);
  assert.throws(
    () =>
      lock.run(() => {
        throw new Error('sync failure');
      }),
    /sync failure/,
  );
  assert.equal(lock.idle, true, 'a throw releases the lock');
});

test('waiters run one at a time, in arrival order, after an async holder', async () => {
  const lock = new SetLock();
  const order: string[] = [];
  let inside = 0;
  let release!: () => void;
  const first = lock.run(async () => {
    inside++;
    order.push('a');
    await new Promise<void>((r) => (release = r));
    inside--;
  });
  const second = lock.run(() => {
    assert.equal(inside, 0);
    order.push('b');
    return 'b';
  });
  const third = lock.run(async () => {
    assert.equal(inside, 0);
    order.push('c');
    throw new Error('async failure');
  });
  const fourth = lock.run(() => order.push('d'));
  assert.ok(second instanceof Promise, 'a busy lock queues even a synchronous fn');
  release();
  await first;
  assert.equal(await second, 'b');
  await assert.rejects(Promise.resolve(third), /async failure/);
  await fourth;
  assert.deepEqual(order, ['a', 'b', 'c', 'd']);
  assert.equal(lock.idle, true);
});

test('a queued fn that throws synchronously still releases the lock', async () => {
  const lock = new SetLock();
  let release!: () => void;
  const holder = lock.run(() => new Promise<void>((r) => (release = r)));
  const failing = lock.run(() => {
    throw new Error('boom');
  });
  const after = lock.run(() => 'after');
  release();
  await holder;
  await assert.rejects(Promise.resolve(failing), /boom/);
  assert.equal(await after, 'after');
  assert.equal(lock.idle, true);
});

test('a token proves the hold only while held, and cannot be forged', async () => {
  const lock = new SetLock();
  const other = new SetLock();
  let kept: SetLockToken | undefined;
  const ran = lock.run((token) => {
    token.assertHolds(lock);
    assert.equal(lock.isHeldBy(token), true);
    assert.throws(() => token.assertHolds(other), /not held/);
    assert.throws(() => new SetLockToken(lock).assertHolds(lock), /not held/, 'a token made by hand proves nothing');
    kept = token;
  });
  assert.equal(ran, undefined, 'a free lock ran it at once');
  assert.throws(() => kept!.assertHolds(lock), /not held/);
  assert.equal(Object.keys(lock).includes('holder'), false, 'the holder is not a public field');
});

test('enter()/leave(): a free lock taken with no token; others queue behind it and run after', async () => {
  const lock = new SetLock();
  assert.equal(lock.enter(), true);
  assert.equal(lock.idle, false);
  assert.equal(lock.enter(), false, 'held: a second enter() does not take it');
  const order: string[] = [];
  const queued = lock.run(() => void order.push('queued'));
  assert.equal(lock.leave(42), 42, 'a value goes back as it is');
  await queued;
  assert.deepEqual(order, ['queued']);
  assert.equal(lock.idle, true);

  // A promise holds the lock until it settles, and keeps its outcome.
  assert.equal(lock.enter(), true);
  let resolve!: (v: string) => void;
  const held = lock.leave(new Promise<string>((r) => (resolve = r)));
  const behind = lock.run(() => void order.push('behind'));
  await Promise.resolve();
  assert.deepEqual(order, ['queued'], 'waits for the promise');
  resolve('done');
  assert.equal(await held, 'done');
  await behind;
  assert.deepEqual(order, ['queued', 'behind']);

  // An op that threw gives the lock back.
  assert.equal(lock.enter(), true);
  lock.leaveAfterThrow();
  assert.equal(lock.idle, true);
  // While anyone waits, enter() does not jump the queue.
  assert.equal(lock.enter(), true);
  const waiting = lock.run(() => 'w');
  assert.equal(lock.leave(undefined), undefined, 'a value goes back as it came');
  assert.equal(lock.enter(), false, 'the waiter goes first');
  assert.equal(await waiting, 'w');
});
