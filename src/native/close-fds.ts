/**
 * closeFds: closing fds that are ours to close, in bulk, where a double
 * close is no reason to stop (teardown paths, fds nobody took).
 */
import { close } from './syscalls.js';

/** Closes fds that are ours to close, ignoring ones already gone. */
export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      close(fd);
    } catch {
      // Already closed: nothing leaks.
    }
  }
}
