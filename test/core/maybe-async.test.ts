import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, isPromiseLike } from '../../src/core/maybe-async.js';

/** A thenable that is not a native promise, as another library may return. */
function thenable<T>(value: T): PromiseLike<T> {
  return { then: (ok, ko) => Promise.resolve(value).then(ok, ko) };
}

test('isPromiseLike: promises and thenables are, plain values (even objects, null, undefined) are not', () => {
  assert.equal(isPromiseLike(Promise.resolve(1)), true);
  assert.equal(isPromiseLike(thenable(1)), true);
  for (const v of [undefined, null, 0, 'then', new Uint8Array(4), { then: 1 }, {}]) assert.equal(isPromiseLike(v), false, inspect(v));
});

test('after: a plain value goes on at once, a promise or thenable through a native promise', async () => {
  const order: string[] = [];
  const sync = after(2, (v) => {
    order.push('sync');
    return v * 2;
  });
  assert.equal(sync, 4, 'no promise for a plain value');
  assert.deepEqual(order, ['sync']);
  const fromPromise = after(Promise.resolve(3), (v) => v * 2);
  const fromThenable = after(thenable(5), (v) => v * 2);
  assert.ok(fromPromise instanceof Promise);
  assert.ok(fromThenable instanceof Promise, 'a thenable is awaited, not taken for the value');
  assert.equal(await fromPromise, 6);
  assert.equal(await fromThenable, 10);
});
