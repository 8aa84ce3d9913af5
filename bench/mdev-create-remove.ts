/**
 * Create+remove cycles per second through the mdev bus: create a device
 * (reserve, probe, register, listen on its socket), then remove it
 * (unlink, unregister, close and unlink the socket, release, give the
 * instance back), strictly one after the other, or `concurrency` cycles
 * in flight at once.
 *
 *   node dist/bench/mdev-create-remove.js [cycles=20000] [concurrency=1]
 *
 * Prints one key=value line per variant: `bus` (no socket), `socket`
 * (the vfio-user server puts each device on its own UNIX socket, and
 * create resolves once it listens; the socket is closed and unlinked when
 * unregistration begins) and `socket+client` (a vfio-user client also
 * connects, negotiates and leaves before the remove). The device is a
 * real mtty-1 card (PCI config space, one UART) from the driver's default
 * pool of 24 ports.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { VfioCore } from '../src/core/index.js';
import { MdevBus } from '../src/mdev/index.js';
import { MttyDriver } from '../src/drivers/mtty/index.js';
import { VfioUserServer } from '../src/vfio-user/server.js';
import { VfioUserClient } from '../src/vfio-user/client.js';

const cycles = Number(process.argv[2] ?? 20_000);
const concurrency = Number(process.argv[3] ?? 1);

function uuidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

type Variant = 'bus' | 'socket' | 'socket+client';

async function run(variant: Variant): Promise<void> {
  const core = new VfioCore();
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-mdev-bench-'));
  const server = variant === 'bus' ? null : new VfioUserServer({ core, socketDir: dir });
  const bus = new MdevBus({ core, serve: server ? (device) => server.serve(device) : undefined });
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
      if (variant === 'socket+client') (await VfioUserClient.connect(join(dir, `${uuid}.sock`))).close();
      await bus.remove(uuid);
      times[i] = performance.now() - t0;
    }
  };

  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - started;

  if (driver.pool.used !== 0 || bus.devices().length !== 0 || core.devices().length !== 0) {
    throw new Error('bench: something was left behind');
  }
  const leftovers = [...Array(Math.min(cycles, 4096)).keys()].filter((n) => existsSync(join(dir, `${uuidOf(n)}.sock`)));
  if (leftovers.length > 0) throw new Error(`bench: ${leftovers.length} sockets left behind`);
  await server?.close();
  rmSync(dir, { recursive: true, force: true });

  const sorted = Array.from(times).sort((a, b) => a - b);
  const pct = (p: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 1000).toFixed(1);
  console.log(
    `variant=${variant} cycles=${cycles} concurrency=${concurrency} ` +
      `cycles_per_s=${Math.round((cycles / elapsed) * 1000)} median_us=${pct(0.5)} p90_us=${pct(0.9)} p99_us=${pct(0.99)}`,
  );
}

await run('bus'); // warm-up pass
await run('bus');
await run('socket');
await run('socket+client');
