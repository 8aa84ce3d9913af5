/**
 * `node dist/bench/ab.js OTHER`: this tree's vfio-user bench server against
 * another tree's (a worktree of main before a change, say), with
 * raw_server as the floor, in one run: the only comparison this machine
 * kind allows, its speed drifts from one run to the next. Every round runs
 * each workload on raw_server, OTHER's server and this tree's, in turn;
 * each run prints its figure and the server's CPU time per message
 * (/proc/PID/schedstat of its main thread), and the end prints, per
 * workload, the median ratio to raw_server of both trees and in how many
 * rounds this tree did better. OTHER must be built (its dist/ and native
 * addon, as `npm install` leaves them). Every process is pinned to one CPU
 * (BENCH_CPU, default 0), as in `npm run bench`.
 *
 *   node dist/bench/ab.js ../main    (ROUNDS=5 N=100000 WORKLOADS=read4,write4,write32k,posted,read1m,write1m)
 *
 * BENCH_SMOKE=1 runs each workload once with small counts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { BIN, build, client, median, pinned, ROOT, start, stop } from './harness.js';

const SMOKE = process.env['BENCH_SMOKE'] === '1';
const ROUNDS = Number(process.env['ROUNDS'] ?? (SMOKE ? 1 : 5));
const N = Number(process.env['N'] ?? (SMOKE ? 2000 : 100_000));
/** Untimed requests before each run's timed ones; counted in the CPU per message. */
const WARM = SMOKE ? 100 : 2000;
/** 32 KiB writes per run: a fifth of N, whole. */
const N32K = Math.max(1, Math.floor(N / 5));
/** 1 MiB reads or writes per run: a fiftieth of N. */
const N1M = Math.max(1, Math.floor(N / 50));

/** A workload: bench_client's arguments, the figure compared and whether more of it is better. */
interface Workload {
  args: string[];
  count: number;
  figure: 'median_us' | 'MiB_s' | 'ops_s';
  higherIsBetter: boolean;
}
const WORKLOADS: Record<string, Workload> = {
  read4: { args: ['-n', String(N)], count: N, figure: 'median_us', higherIsBetter: false },
  write4: { args: ['-n', String(N), '-W'], count: N, figure: 'median_us', higherIsBetter: false },
  write32k: { args: ['-n', String(N32K), '-W', '-c', '32768'], count: N32K, figure: 'MiB_s', higherIsBetter: true },
  posted: { args: ['-n', String(N * 10), '-P'], count: N * 10, figure: 'ops_s', higherIsBetter: true },
  read1m: { args: ['-n', String(N1M), '-c', '1048576'], count: N1M, figure: 'MiB_s', higherIsBetter: true },
  write1m: { args: ['-n', String(N1M), '-W', '-c', '1048576'], count: N1M, figure: 'MiB_s', higherIsBetter: true },
};

/** Nanoseconds the process's main thread has run. */
function cpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

/** One run of `w` against the server `p` listening on `sock`: its figure and CPU per message (us). */
async function measure(p: ChildProcess, sock: string, w: Workload): Promise<{ figure: number; cpuUs: number }> {
  const before = cpuNs(p.pid!);
  const r = await client(sock, [...w.args, '-w', String(WARM)]);
  const figure = r[w.figure];
  if (figure === undefined) throw new Error(`bench_client gave no ${w.figure}`);
  return { figure, cpuUs: (cpuNs(p.pid!) - before) / (w.count + WARM) / 1000 };
}

async function main(): Promise<void> {
  const other = process.argv[2];
  if (other === undefined) throw new Error('usage: node dist/bench/ab.js OTHER_TREE');
  const otherServer = join(resolve(other), 'dist', 'bench', 'vfio-user-server.js');
  if (!existsSync(otherServer)) throw new Error(`${otherServer} is missing: build that tree first (npm install there)`);
  const names = (process.env['WORKLOADS'] ?? Object.keys(WORKLOADS).join(',')).split(',');
  for (const name of names) if (!(name in WORKLOADS)) throw new Error(`unknown workload ${name}: ${Object.keys(WORKLOADS).join(', ')}`);
  build();
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-ab-'));
  const procs: ChildProcess[] = [];
  try {
    const rawSock = join(dir, 'raw.sock');
    const raw = await start(...pinned(join(BIN, 'raw_server'), [rawSock]), { file: rawSock });
    procs.push(raw);
    const serve = async (script: string, sub: string): Promise<[ChildProcess, string]> => {
      const p = await start(...pinned(process.execPath, [script, join(dir, sub), '1']), { line: 'ready' });
      procs.push(p);
      return [p, join(dir, sub, 'bench-0.sock')];
    };
    const servers: Array<[label: string, p: ChildProcess, sock: string]> = [
      ['raw', raw, rawSock],
      ['other', ...(await serve(otherServer, 'other'))],
      ['this', ...(await serve(join(ROOT, 'dist', 'bench', 'vfio-user-server.js'), 'this'))],
    ];
    // One untimed run each, so neither Node server meets the first round cold.
    for (const [, , sock] of servers.slice(1)) await client(sock, ['-n', String(N32K)]);
    const ratios: Record<string, { other: number[]; this: number[]; wins: number }> = {};
    for (const name of names) ratios[name] = { other: [], this: [], wins: 0 };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const name of names) {
        const w = WORKLOADS[name]!;
        const got: Record<string, { figure: number; cpuUs: number }> = {};
        for (const [label, p, sock] of servers) got[label] = await measure(p, sock, w);
        // A ratio above 1 is worse than raw_server, whichever way the figure goes.
        const ratio = (label: string): number =>
          w.higherIsBetter ? got['raw']!.figure / got[label]!.figure : got[label]!.figure / got['raw']!.figure;
        ratios[name]!.other.push(ratio('other'));
        ratios[name]!.this.push(ratio('this'));
        if (ratio('this') < ratio('other')) ratios[name]!.wins++;
        const cell = (label: string): string => `${label} ${got[label]!.figure} ${w.figure} ${got[label]!.cpuUs.toFixed(2)} us cpu`;
        process.stdout.write(
          `round ${round} ${name}: ${cell('raw')} | ${cell('other')} | ${cell('this')} | x raw: other ${ratio('other').toFixed(3)} this ${ratio('this').toFixed(3)}\n`,
        );
      }
    }
    for (const name of names) {
      const r = ratios[name]!;
      process.stdout.write(
        `${name}: median ratio to raw_server (above 1: slower) other ${median(r.other).toFixed(3)}, this ${median(r.this).toFixed(3)}; this better in ${r.wins} of ${ROUNDS} rounds\n`,
      );
    }
  } finally {
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
