/**
 * Create+remove cycles per second through the mdev bus: create a device
 * (reserve, probe, register, listen on its socket), then remove it
 * (unlink, unregister, close and unlink the socket, release, give the
 * instance back), strictly one after the other, or `concurrency` cycles
 * in flight at once.
 *
 *   node dist/bench/mdev-create-remove.js [cycles=20000] [concurrency=1]
 *
 * Prints one key=value line per variant: `bus` (no socket) and `socket`
 * (a listening UNIX socket per device, bound when the device is
 * registered and closed when it starts unregistering, as the vfio-user
 * server does). The device is a real mtty-1 card (PCI config space, one
 * UART) from the driver's default pool of 24 ports.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { VfioCore } from '../src/core/index.js';
import { MdevBus } from '../src/mdev/index.js';
import { MttyDriver } from '../src/drivers/mtty/index.js';
import { UnixServer } from '../src/native/index.js';

const cycles = Number(process.argv[2] ?? 20_000);
const concurrency = Number(process.argv[3] ?? 1);

function uuidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

async function run(label: string, withSocket: boolean): Promise<void> {
  const core = new VfioCore();
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-mdev-bench-'));
  const servers = new Map<string, UnixServer>();
  if (withSocket) core.on('unregistering', (device) => servers.get(device.name)?.close());
  const bus = new MdevBus({
    core,
    serve: withSocket
      ? async (device) => {
          servers.set(device.name, UnixServer.listen(join(dir, `${device.name}.sock`)));
        }
      : undefined,
  });
  const driver = new MttyDriver();
  const parent = bus.registerParent({ name: 'mtty', driver });
  const type = parent.type('mtty-1')!;
  const times = new Float64Array(cycles);
  let next = 0;

  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= cycles) return;
      const uuid = uuidOf(i % 4096);
      const t0 = performance.now();
      await bus.create(uuid, type);
      await bus.remove(uuid);
      times[i] = performance.now() - t0;
      servers.delete(uuid);
    }
  };

  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - started;

  if (driver.freePorts !== driver.poolPorts || bus.devices().length !== 0 || core.devices().length !== 0) {
    throw new Error('bench: something was left behind');
  }
  const leftovers = [...Array(Math.min(cycles, 4096)).keys()].filter((n) => existsSync(join(dir, `${uuidOf(n)}.sock`)));
  if (leftovers.length > 0) throw new Error(`bench: ${leftovers.length} sockets left behind`);
  rmSync(dir, { recursive: true, force: true });

  const sorted = Array.from(times).sort((a, b) => a - b);
  const pct = (p: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 1000).toFixed(1);
  console.log(
    `variant=${label} cycles=${cycles} concurrency=${concurrency} ` +
      `cycles_per_s=${Math.round((cycles / elapsed) * 1000)} median_us=${pct(0.5)} p90_us=${pct(0.9)} p99_us=${pct(0.99)}`,
  );
}

await run('bus', false); // warm-up pass
await run('bus', false);
await run('socket', true);
