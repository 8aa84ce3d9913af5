/**
 * Migration v2 over real vfio-user sockets: the client library's
 * migrate() moves a device's state between two devices of one server,
 * back and forth, and times each move: the downtime (from the source's
 * stop to the destination running) and the whole move, with the bytes.
 *
 *   node dist/bench/migration.js [rounds=20]
 *
 * One key=value line per device: mtty-2 (with one PRE_COPY round), and
 * mbochs small / medium / large (4, 16, 64 MiB of video memory, STOP_COPY
 * only), medians over the rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { VfioCore, type VfioDevice } from '../src/core/index.js';
import { MbochsDevice } from '../src/drivers/mbochs/mbochs-device.js';
import { createMttyDevice } from '../src/drivers/mtty/mtty-device.js';
import { clientPeer, migrate, VfioUserClient, VfioUserServer } from '../src/vfio-user/index.js';

const rounds = Number(process.argv[2] ?? 20);
const MIB = 1 << 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function pair(name: string, make: (name: string, core: VfioCore) => VfioDevice, precopyRounds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-mig-bench-'));
  const core = new VfioCore();
  const server = new VfioUserServer({ core, socketDir: dir });
  const devices = ['a', 'b'].map((s) => make(`${name}-${s}`, core));
  for (const d of devices) d.register();
  const clients = await Promise.all(devices.map((d) => VfioUserClient.connect(server.socketPath(d.name)!)));
  const down: number[] = [];
  const total: number[] = [];
  let bytes = 0;
  for (let i = 0; i < rounds; i++) {
    const [src, dst] = i % 2 === 0 ? clients : [clients[1]!, clients[0]!];
    const stats = await migrate(clientPeer(src!), clientPeer(dst!), { precopyRounds });
    down.push(stats.downtimeMs);
    total.push(stats.totalMs);
    bytes = stats.precopyBytes + stats.stopCopyBytes;
  }
  for (const c of clients) c.close();
  await server.close();
  await Promise.all(devices.map((d) => d.unregister()));
  rmSync(dir, { recursive: true, force: true });
  const t = median(total);
  process.stdout.write(
    `device=${name} bytes=${bytes} downtime_ms=${median(down).toFixed(2)} total_ms=${t.toFixed(2)} MiB_per_s=${(bytes / MIB / (t / 1000)).toFixed(0)}\n`,
  );
}

process.stdout.write(`rounds=${rounds} load=${loadavg()[0]!.toFixed(1)}\n`);
await pair('mtty-2', (name, core) => createMttyDevice({ name, core, ports: 2 }), 1);
for (const [type, memoryBytes] of [
  ['small', 4 * MIB],
  ['medium', 16 * MIB],
  ['large', 64 * MIB],
] as const) {
  await pair(`mbochs-${type}`, (name, core) => new MbochsDevice({ name, core, memoryBytes, maxWidth: 0, maxHeight: 0 }), 0);
}
