/**
 * The host side of the mtty e2e: one uvfio process serving an mtty-1 and an
 * mtty-2 card, each on its own vfio-user socket in the directory given as
 * the only argument, without the mdev bus or the daemon.
 *
 * Prints `ready SOCKET1,SOCKET2` once both listen, then serves until
 * SIGTERM or SIGINT. Process warnings (a driver op that threw, say) go to
 * stderr, where run.sh counts them as failures.
 */
import { join } from 'node:path';
import { VfioCore } from '../../src/core/index.js';
import { createMttyDevice, type MttyPortCount } from '../../src/drivers/mtty/index.js';
import * as vfioUser from '../../src/vfio-user/index.js';

/** What this script needs of the vfio-user server. */
interface Server {
  listen?(): Promise<void>;
  close(): Promise<void>;
}
type ServerClass = new (options: { core: VfioCore; socketDir: string }) => Server;

const socketDir = process.argv[2];
if (!socketDir) {
  console.error('usage: mtty-server.js SOCKET_DIR');
  process.exit(2);
}
process.on('warning', (w) => console.error(`warning: ${w.message}`));

const VfioUserServer = (vfioUser as unknown as Record<string, unknown>)['VfioUserServer'] as ServerClass | undefined;
if (typeof VfioUserServer !== 'function') {
  console.error('error: src/vfio-user exports no VfioUserServer yet: nothing can serve the cards');
  process.exit(3);
}

const core = new VfioCore();
const server = new VfioUserServer({ core, socketDir });
await server.listen?.();
const cards: Array<[string, MttyPortCount]> = [
  ['mtty-1', 1],
  ['mtty-2', 2],
];
for (const [name, ports] of cards) createMttyDevice({ name, core, ports }).register();
// Give the server a turn to put each registered device on its socket.
await new Promise((resolve) => setTimeout(resolve, 100));
console.log(`ready ${cards.map(([name]) => join(socketDir, `${name}.sock`)).join(',')}`);

async function stop(): Promise<void> {
  await server.close();
  await Promise.all(core.devices().map((d) => d.unregister()));
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
