/**
 * FdWatcher: readiness of a file descriptor, from Node's own event loop.
 */
import { addon, type NativeFdWatcher } from './addon.js';

/** Event bit: the fd can be read (or has hung up / failed). */
export const READABLE = 1;
/** Event bit: the fd can be written (or has failed). */
export const WRITABLE = 2;

/**
 * Watches one fd (a uv_poll_t; level-triggered). The callback runs as a
 * normal Node I/O callback: a throw becomes an uncaught exception, and
 * nextTicks and microtasks run right after it. On a poll error it receives
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
