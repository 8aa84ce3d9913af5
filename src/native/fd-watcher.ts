/**
 * FdWatcher: readiness of a file descriptor, from Node's own event loop.
 */
import { addon, type NativeFdWatcher } from './addon.js';

/** Event bit: the fd can be read (or has hung up / failed). */
export const READABLE = 1;
/** Event bit: the fd can be written (or has failed). */
export const WRITABLE = 2;

/**
 * Watches one fd (a uv_poll_t; level-triggered). The callback runs from
 * the loop's poll phase: a throw becomes an uncaught exception, and the
 * nextTicks and microtasks it leaves run in the same turn of the loop,
 * before any setImmediate and before the loop waits again (after the other
 * I/O callbacks of that turn: no callback scope is opened per call). On a poll error it receives
 * the events it watches, so the owner meets the real error in its syscall.
 *
 * An active watcher keeps the process alive (unless unref'd) and cannot be
 * collected; a stopped one can. One watcher per fd (a second is EEXIST);
 * close the watcher before the fd. `close()` is idempotent and leaves the
 * fd open: the fd belongs to the caller.
 */
export type FdWatcher = NativeFdWatcher;

/** Constructor of FdWatcher: `new FdWatcher(fd, (events) => ...)`. */
export interface FdWatcherConstructor {
  new (fd: number, callback: (events: number) => void): FdWatcher;
}

export const FdWatcher: FdWatcherConstructor = addon.FdWatcher;
