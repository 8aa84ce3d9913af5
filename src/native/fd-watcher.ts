/**
 * FdWatcher: readiness of a file descriptor, from Node's own event loop.
 */
import { addon, AnswerStat, type AnswerRegion, type FdWatcherCallback, type NativeFdWatcher } from './addon.js';

export { AnswerStat, type AnswerRegion, type FdWatcherCallback };

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
 *
 * Read-ahead (readAhead(max), for a stream socket): on a readable event the
 * watcher first makes one nonblocking recvmsg of up to `max` bytes into the
 * read-ahead buffer, with room for fds, and passes the result to the
 * callback: the bytes are at the buffer's start and valid only during the
 * callback, the fds are the callback's to close. A message then costs one
 * call into JavaScript instead of two.
 *
 * Linger (linger(), from the callback): after handling what it read, the
 * owner can wait for the next message in the same turn of the loop. The
 * watcher first runs the nextTicks and microtasks left pending (as Node
 * would when the callback returns; linger(true) leaves that to a caller
 * who just did it with runPendingWork), then sleeps in poll() on the loop's
 * own epoll fd (the watched fd is in it) until the loop's next timer: it
 * comes back false when it woke for anything but the fd's bytes. A
 * request-reply peer on the same CPU then costs what a blocking recv
 * costs, not a loop turn.
 *
 * Answers (answer(), for a vfio-user server's socket): the watcher may
 * answer REGION_READ and REGION_WRITE requests of plain region memory
 * itself, with no call into JavaScript: in a linger, when its caller says
 * (linger's `answerReads`) that such an access would be served at once (no
 * JavaScript runs before linger returns, so that holds for every answer);
 * at a readable event, while none of the caller's blocker cells is set.
 */
export type FdWatcher = NativeFdWatcher;

/** Constructor of FdWatcher: `new FdWatcher(fd, (events) => ...)`. */
export interface FdWatcherConstructor {
  new (fd: number, callback: FdWatcherCallback): FdWatcher;
}

export const FdWatcher: FdWatcherConstructor = addon.FdWatcher;

/**
 * Where every watcher's read-ahead goes (null: nowhere; read-ahead then
 * reads nothing; an empty buffer is EINVAL, its read would look like EOF). One buffer for all: what is read there is handed over at
 * once. Never pass a buffer that can be detached or whose bytes somebody
 * still needs: the next readable event overwrites them. The first `owner`
 * keeps the right to set it for the thread's life; another gets EBUSY (a
 * second copy of the transport must read for itself, or it would find its
 * bytes in the first one's buffer).
 */
export const setReadAheadBuffer: (owner: object, buffer: Uint8Array | null) => void = addon.setReadAheadBuffer;

/**
 * Runs the nextTicks and microtasks left pending now, as Node does when a
 * callback returns, with Node's own runNextTicks (process._tickCallback),
 * and says whether it did: pass that to linger(). linger(true) then spares
 * the callback scope it would open for the same work (~1,000
 * instructions: two allocations, an async context pushed and popped); in
 * a Node without runNextTicks this runs nothing and says false, and
 * linger(false) runs the work itself. A throw in that work reaches the
 * caller.
 */
export const runPendingWork: () => boolean = (() => {
  const tick = (process as { _tickCallback?: unknown })._tickCallback;
  if (typeof tick !== 'function') return () => false;
  const run = tick as () => void;
  return () => {
    run();
    return true;
  };
})();
