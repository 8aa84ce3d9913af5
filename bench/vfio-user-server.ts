/**
 * The uvfio side of the benchmark, as a process of its own (so it can be
 * pinned to a CPU and its RSS read): a VfioCore with N bench devices
 * (`bench-0` ... `bench-{N-1}`), each served by the vfio-user server in
 * SOCKET_DIR. Prints one line, "ready", once every socket listens; runs
 * until SIGTERM. With --untouched the regions are left zero and never
 * written, so their pages are not resident: what the memory figure wants
 * is uvfio's own footprint, not 1 MiB of device data per device. With
 * --mtty it also serves one real mtty card, `mtty-0` (for irq_client).
 *
 *   node dist/bench/vfio-user-server.js SOCKET_DIR [N=1] [--untouched] [--mtty]
 */
import { VfioCore } from '../src/core/index.js';
import { VfioUserServer } from '../src/vfio-user/index.js';
import { MttyDevice } from '../src/drivers/mtty/index.js';
import { BenchDevice } from './bench-device.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const fill = !process.argv.includes('--untouched');
const [dir, count = '1'] = args;
if (dir === undefined) {
  process.stderr.write('usage: vfio-user-server.js SOCKET_DIR [N]\n');
  process.exit(2);
}
const core = new VfioCore();
for (let i = 0; i < Number(count); i++) new BenchDevice({ name: `bench-${i}`, core, fill }).register();
if (process.argv.includes('--mtty')) new MttyDevice({ name: 'mtty-0', core, ports: 1 }).register();
const server = new VfioUserServer({
  core,
  socketDir: dir,
  log: { info: () => {}, warn: (m, f) => process.stderr.write(`${m} ${JSON.stringify(f)}\n`) },
});
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
process.stdout.write('ready\n');
// Alive even with no device to serve; with devices their sockets keep it
// alive, and no timer is armed (a timer makes every wait of the loop arm
// one in the kernel, as the daemon's loop does not).
if (Number(count) === 0) setInterval(() => {}, 1 << 30);
