/**
 * Idle clients for the benchmark's memory figure: connects to every socket
 * named on the command line, negotiates VERSION (which binds a device file
 * on the server), prints "ready" and then does nothing until SIGTERM.
 *
 *   node dist/bench/idle-clients.js SOCK...
 */
import { VfioUserClient } from '../src/vfio-user/index.js';

const clients = await Promise.all(process.argv.slice(2).map((path) => VfioUserClient.connect(path)));
process.on('SIGTERM', () => {
  for (const c of clients) c.close();
  process.exit(0);
});
process.stdout.write('ready\n');
setInterval(() => {}, 1 << 30);
