/**
 * Ops answer with their value when they ran at once (the hot path pays no
 * promise and no microtask) and with a promise otherwise: the core's
 * T | Promise<T>. These are the one way to tell which, and to go on either way.
 */

/** True for a promise or any other thenable (a driver may return either). */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/** `then` that stays synchronous for a plain value. */
export function after<T, R>(value: T | PromiseLike<T>, fn: (v: T) => R): R | Promise<Awaited<R>> {
  if (isPromiseLike(value)) return Promise.resolve(value).then(fn) as Promise<Awaited<R>>;
  return fn(value);
}
