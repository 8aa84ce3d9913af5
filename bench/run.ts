/**
 * `npm run bench`: uvfio's vfio-user server against the raw socket floor.
 *
 * Builds ../shared/bench/{bench_client,raw_server}.c and
 * bench/{irq_client,raw_irq_server}.c into bench/bin with gcc, starts
 * raw_server, raw_irq_server, the Node floor (bench/node-floor.ts:
 * raw_server's answers from Node's event loop, one call into JavaScript
 * per readable event, lingering after its answers as uvfio's sockets do,
 * and one sendmsg per reply) and the uvfio bench
 * server (bench/vfio-user-server.ts: devices with a 1 MiB region 0 whose
 * reads are a memcpy, and one real mtty card), pins every process to
 * CPU 0 (a cross-CPU wake-up costs more than the round trip on a 2-vCPU
 * machine), and measures, alternating raw, the Node floor and uvfio so
 * all meet the same background load:
 *
 * - 4-byte REGION_READ and REGION_WRITE: median, p99, ops/s (one client)
 * - 32 KiB REGION_WRITE, 1 MiB REGION_READ and REGION_WRITE: MiB/s
 * - posted 4-byte writes (NO_REPLY, as QEMU sends them): ops/s
 * - 4 clients on 4 devices, started together: aggregate ops/s
 * - interrupt latency through the real mtty: a posted write to its
 *   transmit register in loopback, to the INTx eventfd becoming readable,
 *   against raw_irq_server (the same messages answered in C, the write
 *   signalling the eventfd at once: the floor of "message in, eventfd
 *   signalled")
 * - the uvfio server's RSS with 100 devices and 100 idle negotiated clients
 *
 * Each single-client figure is the median of ROUNDS runs. The table goes
 * to stdout and into BENCHMARKS.md, between the markers of its section.
 * BENCH_SMOKE=1 runs every row once with small counts and writes nothing
 * (the test suite does that, so the benchmark cannot rot).
 *
 *   npm run bench    (ROUNDS=5 N4=200000 N32K=20000 N1M=3000 NPOSTED=1000000 NMULTI=50000 NIRQ=20000)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { BIN, build, client, median, pinned, ROOT, start, stop, type Result } from './harness.js';

const SMOKE = process.env['BENCH_SMOKE'] === '1';
const env = (name: string, fallback: number, smoke: number): number => Number(process.env[name] ?? (SMOKE ? smoke : fallback));
const ROUNDS = env('ROUNDS', 5, 1);
const N4 = env('N4', 200_000, 2000);
const N32K = env('N32K', 20_000, 200);
const N1M = env('N1M', 3000, 20);
const NPOSTED = env('NPOSTED', 1_000_000, 10_000);
const NMULTI = env('NMULTI', 50_000, 1000);
const NIRQ = env('NIRQ', 20_000, 200);
const MARK_START = '<!-- bench:vfio-user:start -->';
const MARK_END = '<!-- bench:vfio-user:end -->';

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
    const rawIrq = join(dir, 'raw-irq.sock');
    procs.push(await start(...pinned(join(BIN, 'raw_irq_server'), [rawIrq]), { file: rawIrq }));
    const floors = [0, 1, 2, 3].map((i) => join(dir, `node-floor-${i}.sock`));
    procs.push(await start(...pinned(node, [join(ROOT, 'dist', 'bench', 'node-floor.js'), ...floors]), { line: 'ready' }));
    const uvDir = join(dir, 'uvfio');
    procs.push(await start(...pinned(node, [join(ROOT, 'dist', 'bench', 'vfio-user-server.js'), uvDir, '4', '--mtty']), { line: 'ready' }));
    const uvs = [0, 1, 2, 3].map((i) => join(uvDir, `bench-${i}.sock`));

    // One workload: bench_client's arguments; run on raw_server, the Node floor and uvfio alternately.
    const workloads = {
      read4: ['-n', String(N4)],
      write4: ['-n', String(N4), '-W'],
      write32k: ['-n', String(N32K), '-w', '500', '-W', '-c', '32768'],
      read1m: ['-n', String(N1M), '-w', String(Math.min(200, N1M)), '-c', '1048576'],
      write1m: ['-n', String(N1M), '-w', String(Math.min(200, N1M)), '-W', '-c', '1048576'],
      posted: ['-n', String(NPOSTED), '-P'],
    };
    type Workload = keyof typeof workloads;
    const runs = Object.fromEntries(
      Object.keys(workloads).map((k) => [k, { raw: [] as Result[], floor: [] as Result[], uvfio: [] as Result[] }]),
    ) as Record<Workload, { raw: Result[]; floor: Result[]; uvfio: Result[] }>;
    const multi: { raw: number[]; floor: number[]; uvfio: number[] } = { raw: [], floor: [], uvfio: [] };
    const irq: { raw: Result[]; uvfio: Result[] } = { raw: [], uvfio: [] };
    const irqArgs = ['-n', String(NIRQ), '-w', String(Math.min(1000, NIRQ))];
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
      for (const [name, args] of Object.entries(workloads) as [Workload, string[]][]) {
        runs[name].raw.push(await client(raws[0]!, args));
        runs[name].floor.push(await client(floors[0]!, args));
        runs[name].uvfio.push(await client(uvs[0]!, args));
      }
      multi.raw.push(await together(raws));
      multi.floor.push(await together(floors));
      multi.uvfio.push(await together(uvs));
      irq.raw.push(await client(rawIrq, irqArgs, 'irq_client'));
      irq.uvfio.push(await client(join(uvDir, 'mtty-0.sock'), irqArgs, 'irq_client'));
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
    type Row = [name: string, raw: number, floor: number | undefined, uvfio: number, target: string];
    const row = (name: string, w: Workload, k: string, target: string): Row => [
      name,
      pick(runs[w].raw, k),
      pick(runs[w].floor, k),
      pick(runs[w].uvfio, k),
      target,
    ];
    const rows: Row[] = [
      row('4-byte REGION_READ, median (us)', 'read4', 'median_us', '≤ 1.10'),
      row('4-byte REGION_READ, p99 (us)', 'read4', 'p99_us', '≤ 1.3'),
      row('4-byte REGION_READ, ops/s', 'read4', 'ops_s', '≥ 0.9'),
      row('4-byte REGION_WRITE, median (us)', 'write4', 'median_us', '≤ 1.10'),
      row('4-byte REGION_WRITE, p99 (us)', 'write4', 'p99_us', '≤ 1.3'),
      row('32 KiB REGION_WRITE, MiB/s', 'write32k', 'MiB_s', '≥ 0.85'),
      row('1 MiB REGION_READ, MiB/s', 'read1m', 'MiB_s', '≥ 0.8'),
      row('1 MiB REGION_WRITE, MiB/s', 'write1m', 'MiB_s', '≥ 0.8'),
      row('posted 4-byte writes, ops/s', 'posted', 'ops_s', '≥ 1.0'),
      ['4 clients on 4 devices, aggregate ops/s', median(multi.raw), median(multi.floor), median(multi.uvfio), '≥ 0.95'],
      // Their floor is raw_irq_server, not raw_server; the Node floor has no device to interrupt.
      ['interrupt latency, mtty INTx, median (us)', pick(irq.raw, 'median_us'), undefined, pick(irq.uvfio, 'median_us'), ''],
      ['interrupt latency, mtty INTx, p99 (us)', pick(irq.raw, 'p99_us'), undefined, pick(irq.uvfio, 'p99_us'), ''],
    ];
    const fmt = (v: number): string => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
    const table = [
      '| measurement | raw floor | Node floor | uvfio | Node floor / raw | uvfio / raw | target |',
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
      ...rows.map(
        ([name, raw, floor, uv, target]) =>
          `| ${name} | ${fmt(raw)} | ${floor === undefined ? '' : fmt(floor)} | ${fmt(uv)} | ` +
          `${floor === undefined ? '' : (floor / raw).toFixed(2)} | ${(uv / raw).toFixed(2)} | ${target} |`,
      ),
      `| uvfio server RSS, no device (MiB) | | | ${rssBare.toFixed(1)} | | | |`,
      `| uvfio server RSS, 100 devices (MiB) | | | ${rssDevices.toFixed(1)} | | | |`,
      `| uvfio server RSS, 100 devices + 100 idle clients (MiB) | | | ${rssClients.toFixed(1)} | | | ≤ 100 |`,
    ].join('\n');
    const section = [
      MARK_START,
      '## vfio-user: the message path against the raw socket floor (`bench/run.ts`)',
      '',
      "uvfio's vfio-user server (`bench/vfio-user-server.ts`: devices with a 1 MiB",
      'region 0 whose reads are a memcpy and whose writes are stored, and one real',
      'mtty card) and `raw_server` (the bare socket round trip, no device) answer',
      '`bench_client` (both from `../shared/bench`, built with `gcc -O2',
      "-D_GNU_SOURCE`). The Node floor (`bench/node-floor.ts`) gives raw_server's",
      "answers from Node's event loop with the least JavaScript a server there can",
      'run: one call into JavaScript per readable event (the native watcher reads',
      "ahead), lingering after its answers as uvfio's sockets do, one `sendmsg` per",
      "reply (the rest of a large one sent as uvfio's sockets send it), no",
      "framing, session or device, its region filled as raw_server's; what it costs",
      "over raw_server is Node's loop turn and the C++/JavaScript crossings, which",
      'every server whose message handling is JavaScript pays. Every process is',
      'pinned to CPU 0. Single client figures are',
      `the median of ${ROUNDS} alternating runs (${N4} 4-byte reads or writes, ${N32K}`,
      `32 KiB writes, ${N1M} 1 MiB reads or writes, ${NPOSTED} posted writes each);`,
      `"4 clients" runs one bench_client per device (${NMULTI} reads each) started`,
      'at the same instant, raw_server once per socket, the Node floor one process',
      'listening on four sockets, as uvfio. Interrupt latency',
      '(`bench/irq_client.c`, ' + `${NIRQ} interrupts a run): from sending a posted`,
      "one-byte write to the transmit register of the mtty's first port (in",
      'loopback, receive interrupt enabled) to its INTx eventfd becoming readable.',
      'The "raw floor" column is `raw_server`, except in the interrupt rows: there',
      'it is `raw_irq_server` (`bench/raw_irq_server.c`), which answers',
      "irq_client's messages with the same blocking receives and no device (8",
      'bytes of registers) and writes the INTx eventfd on the write to the',
      'transmit register, the floor of "message in, eventfd signalled"; it and',
      'the mtty alternate each round. The memory figures are VmRSS of a server process of',
      'its own, whose 100 devices leave their 1 MiB regions untouched (device data',
      "is not uvfio's footprint), with one idle client per device connected and",
      'negotiated (a bound file each).',
      '',
      '    npm run bench',
      '',
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Linux ${release()}, Node ${process.version}, load average ${load.toFixed(2)} at start.`,
      '',
      table,
      MARK_END,
    ].join('\n');
    process.stdout.write(`${table}\n`);
    if (SMOKE) return;
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
