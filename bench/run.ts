/**
 * `npm run bench`: uvfio's vfio-user server against the raw socket floor.
 *
 * Builds ../shared/bench/{bench_client,raw_server}.c into bench/bin with
 * gcc, starts raw_server and the uvfio bench server (bench/vfio-user-server.ts:
 * devices with a 1 MiB region 0 whose reads are a memcpy), pins every
 * process to CPU 0 (a cross-CPU wake-up costs more than the round trip on
 * a 2-vCPU machine), and measures, alternating raw and uvfio so both meet
 * the same background load:
 *
 * - 4-byte REGION_READ: median, p99, ops/s (one client)
 * - 1 MiB REGION_READ: MiB/s (one client)
 * - 4 clients on 4 devices, started together: aggregate ops/s
 * - the uvfio server's RSS with 100 devices and 100 idle negotiated clients
 *
 * Each single-client figure is the median of ROUNDS runs. The table goes
 * to stdout and into BENCHMARKS.md, between the markers of its section.
 *
 *   npm run bench            (ROUNDS=3 N4=200000 N1M=3000 NMULTI=50000 by default)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = join(ROOT, '..', 'shared', 'bench');
const BIN = join(ROOT, 'bench', 'bin');
const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const ROUNDS = env('ROUNDS', 3);
const N4 = env('N4', 200_000);
const N1M = env('N1M', 3000);
const NMULTI = env('NMULTI', 50_000);
const CPU = process.env.BENCH_CPU ?? '0';
const MARK_START = '<!-- bench:vfio-user:start -->';
const MARK_END = '<!-- bench:vfio-user:end -->';

type Result = Record<string, number>;

function build(): void {
  for (const name of ['bench_client', 'raw_server']) {
    execFileSync('gcc', ['-O2', '-D_GNU_SOURCE', '-o', join(BIN, name), join(SHARED, `${name}.c`)], { stdio: 'inherit' });
  }
}

/** Parses bench_client's key=value line. */
function parse(line: string): Result {
  const out: Result = {};
  for (const kv of line.trim().split(/\s+/)) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined && !Number.isNaN(Number(v))) out[k] = Number(v);
  }
  return out;
}

function pinned(cmd: string, args: string[]): [string, string[]] {
  return ['taskset', ['-c', CPU, cmd, ...args]];
}

function client(sock: string, args: string[]): Promise<Result> {
  const [cmd, argv] = pinned(join(BIN, 'bench_client'), ['-s', sock, '-r', '0', ...args]);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(parse(out)) : reject(new Error(`bench_client ${args.join(' ')} exited with ${code}`))));
  });
}

/** Starts a process and resolves once it printed "ready" (or its socket exists). */
function start(cmd: string, args: string[], ready: { line?: string; file?: string }): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start`)), 30_000);
    const done = (): void => {
      clearTimeout(timer);
      resolve(p);
    };
    p.on('error', reject);
    p.on('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited early (${code})`)));
    if (ready.line !== undefined) p.stdout.on('data', (d: Buffer) => d.toString().includes(ready.line!) && done());
    if (ready.file !== undefined) {
      const poll = setInterval(() => {
        if (existsSync(ready.file!)) {
          clearInterval(poll);
          done();
        }
      }, 10);
    }
  });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.removeAllListeners('exit');
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** 4 clients started at the same instant; aggregate ops/s over the span they all ran. */
async function together(socks: string[]): Promise<number> {
  const at = process.hrtime.bigint() + 300_000_000n; // CLOCK_MONOTONIC, like bench_client's -S
  const runs = await Promise.all(socks.map((s) => client(s, ['-n', String(NMULTI), '-w', '2000', '-S', String(at)])));
  const t0 = Math.min(...runs.map((r) => r.t0_ns!));
  const t1 = Math.max(...runs.map((r) => r.t1_ns!));
  return (runs.length * NMULTI) / ((t1 - t0) / 1e9);
}

async function main(): Promise<void> {
  build();
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-bench-'));
  const node = process.execPath;
  const procs: ChildProcess[] = [];
  const load = loadavg()[0]!;
  try {
    const raws = [0, 1, 2, 3].map((i) => join(dir, `raw-${i}.sock`));
    for (const s of raws) procs.push(await start(...pinned(join(BIN, 'raw_server'), [s]), { file: s }));
    const uvDir = join(dir, 'uvfio');
    procs.push(await start(...pinned(node, [join(ROOT, 'dist', 'bench', 'vfio-user-server.js'), uvDir, '4']), { line: 'ready' }));
    const uvs = [0, 1, 2, 3].map((i) => join(uvDir, `bench-${i}.sock`));

    const small: { raw: Result[]; uvfio: Result[] } = { raw: [], uvfio: [] };
    const large: { raw: Result[]; uvfio: Result[] } = { raw: [], uvfio: [] };
    const multi: { raw: number[]; uvfio: number[] } = { raw: [], uvfio: [] };
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
      small.raw.push(await client(raws[0]!, ['-n', String(N4)]));
      small.uvfio.push(await client(uvs[0]!, ['-n', String(N4)]));
      large.raw.push(await client(raws[0]!, ['-n', String(N1M), '-w', '200', '-c', '1048576']));
      large.uvfio.push(await client(uvs[0]!, ['-n', String(N1M), '-w', '200', '-c', '1048576']));
      multi.raw.push(await together(raws));
      multi.uvfio.push(await together(uvs));
    }
    for (const p of procs.splice(0)) await stop(p);

    // Memory: an empty server, then 100 devices, then 100 idle clients, one per device.
    const bare = await start(node, [join(ROOT, 'dist', 'bench', 'vfio-user-server.js'), join(dir, 'bare'), '0'], { line: 'ready' });
    await new Promise((r) => setTimeout(r, 500));
    const rssBare = rssMiB(bare.pid!);
    await stop(bare);
    const memDir = join(dir, 'mem');
    const server = await start(node, [join(ROOT, 'dist', 'bench', 'vfio-user-server.js'), memDir, '100', '--untouched'], { line: 'ready' });
    procs.push(server);
    await new Promise((r) => setTimeout(r, 500));
    const rssDevices = rssMiB(server.pid!);
    const socks = Array.from({ length: 100 }, (_, i) => join(memDir, `bench-${i}.sock`));
    procs.push(await start(node, [join(ROOT, 'dist', 'bench', 'idle-clients.js'), ...socks], { line: 'ready' }));
    await new Promise((r) => setTimeout(r, 1000));
    const rssClients = rssMiB(server.pid!);

    const pick = (rs: Result[], k: string): number => median(rs.map((x) => x[k]!));
    const rows: [string, number, number, string, string][] = [
      ['4-byte REGION_READ, median (us)', pick(small.raw, 'median_us'), pick(small.uvfio, 'median_us'), 'uvfio / raw', '≤ 1.5'],
      ['4-byte REGION_READ, p99 (us)', pick(small.raw, 'p99_us'), pick(small.uvfio, 'p99_us'), 'uvfio / raw', ''],
      ['4-byte REGION_READ, ops/s', pick(small.raw, 'ops_s'), pick(small.uvfio, 'ops_s'), 'uvfio / raw', ''],
      ['1 MiB REGION_READ, MiB/s', pick(large.raw, 'MiB_s'), pick(large.uvfio, 'MiB_s'), 'uvfio / raw', '≥ 0.8'],
      ['1 MiB REGION_READ, median (us)', pick(large.raw, 'median_us'), pick(large.uvfio, 'median_us'), 'uvfio / raw', ''],
      ['4 clients on 4 devices, aggregate ops/s', median(multi.raw), median(multi.uvfio), 'uvfio / raw', ''],
    ];
    const fmt = (v: number): string => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
    const table = [
      '| measurement | raw_server | uvfio | ratio | target |',
      '| --- | ---: | ---: | ---: | --- |',
      ...rows.map(([name, raw, uv, , target]) => `| ${name} | ${fmt(raw)} | ${fmt(uv)} | ${(uv / raw).toFixed(2)} | ${target} |`),
      `| uvfio server RSS, no device (MiB) | | ${rssBare.toFixed(1)} | | |`,
      `| uvfio server RSS, 100 devices (MiB) | | ${rssDevices.toFixed(1)} | | |`,
      `| uvfio server RSS, 100 devices + 100 idle clients (MiB) | | ${rssClients.toFixed(1)} | | ≤ 100 |`,
    ].join('\n');
    const section = [
      MARK_START,
      '## vfio-user: REGION_READ against the raw socket floor (`bench/run.ts`)',
      '',
      'uvfio\'s vfio-user server (`bench/vfio-user-server.ts`: devices with a 1 MiB',
      'region 0 whose reads are a memcpy) and `raw_server` (the bare socket round',
      'trip, no device) answer `bench_client` (both from `../shared/bench`, built',
      'with `gcc -O2 -D_GNU_SOURCE`). Every process is pinned to CPU 0. Single',
      `client figures are the median of ${ROUNDS} alternating runs (${N4} 4-byte reads,`,
      `${N1M} 1 MiB reads each); "4 clients" runs one bench_client per device (${NMULTI}`,
      'reads each) started at the same instant, raw_server once per socket. The',
      'memory figures are VmRSS of a server process of its own, whose 100 devices',
      'leave their 1 MiB regions untouched (device data is not uvfio\'s footprint),',
      'with one idle client per device connected and negotiated (a bound file each).',
      '',
      '    npm run bench',
      '',
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Linux ${release()}, Node ${process.version}, load average ${load.toFixed(2)} at start.`,
      '',
      table,
      MARK_END,
    ].join('\n');
    process.stdout.write(`${table}\n`);
    const file = join(ROOT, 'BENCHMARKS.md');
    const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
    const at = old.indexOf(MARK_START);
    const end = old.indexOf(MARK_END);
    const next = at >= 0 && end > at ? old.slice(0, at) + section + old.slice(end + MARK_END.length) : `${old.trimEnd()}\n\n${section}\n`;
    writeFileSync(file, next);
    process.stderr.write(`BENCHMARKS.md updated\n`);
  } finally {
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
