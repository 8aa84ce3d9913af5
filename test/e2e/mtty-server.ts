/**
 * The host side of the mtty e2e: one uvfio process serving an mtty-1 and an
 * mtty-2 card, each on its own vfio-user socket in the directory given as
 * the only argument, without the mdev bus or the daemon.
 *
 * Prints `ready SOCKET1,SOCKET2` once both listen, then serves until
 * SIGTERM or SIGINT. What the server cannot put on the wire and process
 * warnings (a driver op that threw, say) go to stderr as `warn:` lines,
 * which run.sh counts as failures.
 */
import { VfioCore } from '../../src/core/index.js';
import { createMttyDevice, type MttyPortCount } from '../../src/drivers/mtty/index.js';
import { VfioUserServer, type ServerLog } from '../../src/vfio-user/index.js';

const socketDir = process.argv[2];
if (!socketDir) {
  console.error('usage: mtty-server.js SOCKET_DIR');
  process.exit(2);
}

const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
  console.error(`${level}: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}`);
const log: ServerLog = { info: line('info'), warn: line('warn') };
process.on('warning', (w) => log.warn(w.message));

const core = new VfioCore();
const server = new VfioUserServer({ core, socketDir, log });
const cards: Array<[string, MttyPortCount]> = [
  ['mtty-1', 1],
  ['mtty-2', 2],
];
const sockets: string[] = [];
for (const [name, ports] of cards) {
  const card = createMttyDevice({ name, core, ports });
  card.register();
  await server.serve(card);
  sockets.push(server.socketPath(name)!);
}
console.log(`ready ${sockets.join(',')}`);

async function stop(): Promise<void> {
  await server.close();
  await Promise.all(core.devices().map((d) => d.unregister()));
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
