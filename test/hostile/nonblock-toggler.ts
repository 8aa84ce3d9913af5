/**
 * A hostile helper process for the eventfd tests: it flips O_NONBLOCK on
 * the file description it got as fd 3 (an eventfd the server also holds)
 * in a tight loop for the milliseconds named on its command line, so that
 * whatever the server does with the flag, it races. Prints "ready" first.
 * Run without arguments (say, by a test runner globbing the folder) it
 * does nothing.
 */
import { setNonblocking } from '../../src/native/index.js';

const ms = Number(process.argv[2]);
if (Number.isFinite(ms)) {
  process.stdout.write('ready\n');
  const end = Date.now() + ms;
  let flips = 0;
  // Bounded by the deadline; Date.now() is read once per 1000 flips.
  while (flips % 1000 !== 0 || Date.now() < end) {
    setNonblocking(3, false);
    setNonblocking(3, true);
    setNonblocking(3, false);
    flips++;
  }
  process.stdout.write(`flips ${flips}\n`);
}
