/**
 * The pause a live takeover costs clients: a real daemon (the command
 * line, spawned) serves devices, each with one client reading a register
 * in a loop (one request in flight, as a vCPU's MMIO exit is), while
 * `uvfio daemon --takeover` replaces it, ROUNDS times in a row. The pause
 * of one takeover is the longest gap between two consecutive replies of
 * any client around it: from the old daemon's last reply to the new
 * daemon's first. Also: the new daemon's own freeze-to-commit time, and
 * the takeover's wall time from spawning the new process to the old one's
 * exit (mostly Node starting up, during which the old daemon serves).
 *
 *   node dist/bench/takeover.js [rounds=5]      (BENCH_SMOKE=1: the 3-device setup only)
 *
 * Two setups: 3 devices (mtty-1, mdpy-xga, mbochs-medium) and 100
 * devices (24 mtty-1, 4 mdpy-vga, 72 mbochs-small on a 512 MiB mbochs
 * pool). One key=value line each: medians and the worst over the rounds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PciRegion } from '../src/base/uapi.js';
import { VfioUserClient } from '../src/vfio-user/index.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const rounds = Number(process.argv[2] ?? 5);

interface Log {
  msg: string;
  [k: string]: unknown;
}

/** A spawned `uvfio daemon`, its JSON log lines collected. */
class Proc {
  readonly logs: Log[] = [];
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => {
      tail += d.toString();
      let nl: number;
      while ((nl = tail.indexOf('\n')) !== -1) {
        try {
          this.logs.push(JSON.parse(tail.slice(0, nl)) as Log);
        } catch {
          // not a log line
        }
        tail = tail.slice(nl + 1);
      }
    });
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  async waitFor(msg: string, ms = 60_000): Promise<Log> {
    const end = Date.now() + ms;
    for (;;) {
      const l = this.logs.find((x) => x.msg === msg);
      if (l) return l;
      if (this.child.exitCode !== null) throw new Error(`the daemon exited (${this.child.exitCode}) before "${msg}"`);
      if (Date.now() > end) throw new Error(`no "${msg}" within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

function daemon(env: NodeJS.ProcessEnv, args: string[]): Proc {
  return new Proc(
    spawn(process.execPath, [MAIN, 'daemon', '--no-defaults', '--no-vnc', '--log-format', 'json', '--mbochs-mem', '512', ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
}

function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`uvfio ${args.join(' ')}: ${err}`))));
  });
}

/** A client reading one register in a loop; `gaps` are the times between consecutive replies. */
class Reader {
  last = 0;
  maxGap = 0;
  replies = 0;
  #stop = false;
  readonly done: Promise<void>;
  constructor(
    readonly client: VfioUserClient,
    region: number,
    offset: number,
  ) {
    this.done = (async () => {
      this.last = performance.now();
      while (!this.#stop) {
        await client.regionRead(region, offset, 1);
        const now = performance.now();
        this.maxGap = Math.max(this.maxGap, now - this.last);
        this.last = now;
        this.replies++;
      }
    })();
  }
  /** Forgets the gaps so far (between takeovers). */
  reset(): void {
    this.maxGap = 0;
  }
  async stop(): Promise<void> {
    this.#stop = true;
    await this.done;
    this.client.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function setup(name: string, types: Array<[string, string, number]>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-tk-'));
  const env = { ...process.env, UVFIO_RUNTIME_DIR: join(dir, 'run'), UVFIO_STATE_DIR: join(dir, 'state'), UVFIO_LOG_LEVEL: 'info' };
  let current = daemon(env, []);
  const readers: Reader[] = [];
  try {
    await current.waitFor('daemon ready');
    for (const [parent, type, count] of types) for (let i = 0; i < count; i++) await cli(env, ['start', '-p', parent, '-t', type]);
    const devices = JSON.parse(await cli(env, ['list', '--json'])) as Array<{ socket: string; parent: string }>;
    for (const d of devices) {
      const client = await VfioUserClient.connect(d.socket);
      // mtty: the scratch register of port 0; the displays: the vendor id in config space.
      readers.push(d.parent === 'mtty' ? new Reader(client, PciRegion.BAR0, 7) : new Reader(client, PciRegion.CONFIG, 0));
    }
    const pauses: number[] = [];
    const frozen: number[] = [];
    const walls: number[] = [];
    const phases: Array<Record<string, number>> = [];
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, 200));
      for (const x of readers) x.reset();
      const t0 = performance.now();
      const next = daemon(env, ['--takeover']);
      const serving = await next.waitFor('takeover: serving');
      const code = await current.exited;
      const handed = current.logs.find((l) => l.msg === 'takeover: handed over');
      const p = (handed?.phases ?? {}) as Record<string, number>;
      phases.push(p);
      phases[phases.length - 1]!.loadMs = serving.loadMs as number;
      phases[phases.length - 1]!.resumeMs = serving.resumeMs as number;
      if (code !== 0) throw new Error(`the old daemon exited ${code}`);
      walls.push(performance.now() - t0);
      await new Promise((res) => setTimeout(res, 200));
      pauses.push(Math.max(...readers.map((x) => x.maxGap)));
      frozen.push(serving.frozenMs as number);
      current = next;
    }
    const replies = readers.reduce((n, x) => n + x.replies, 0);
    process.stdout.write(
      `setup=${name} devices=${devices.length} clients=${readers.length} rounds=${rounds} pause_ms_median=${median(pauses).toFixed(1)} pause_ms_max=${Math.max(...pauses).toFixed(1)} ` +
        `freeze_to_commit_ms_median=${median(frozen)} takeover_wall_ms_median=${median(walls).toFixed(0)} replies=${replies}\n` +
        `  phases_ms_median: ${['freezeMs', 'saveMs', 'sendMs', 'loadMs', 'commitWaitMs', 'releaseMs', 'resumeMs'].map((k) => `${k}=${median(phases.map((x) => x[k] ?? NaN))}`).join(' ')}\n`,
    );
  } finally {
    await Promise.all(readers.map((x) => x.stop().catch(() => {})));
    current.child.kill('SIGTERM');
    await current.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

process.stdout.write(`load=${loadavg()[0]!.toFixed(1)}\n`);
await setup('3-devices', [
  ['mtty', 'mtty-1', 1],
  ['mdpy', 'mdpy-xga', 1],
  ['mbochs', 'mbochs-medium', 1],
]);
// BENCH_SMOKE=1 (the test suite): the small setup only, to keep this runnable.
if (process.env['BENCH_SMOKE'] !== '1')
  await setup('100-devices', [
    ['mtty', 'mtty-1', 24],
    ['mdpy', 'mdpy-vga', 4],
    ['mbochs', 'mbochs-small', 72],
  ]);
