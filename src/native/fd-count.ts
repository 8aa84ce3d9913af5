/** Counting open fds, for leak checks in tests. */
import { readdirSync } from 'node:fs';

/** How many fds this process has open (not counting the one used to count). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length - 1;
}
