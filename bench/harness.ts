/**
 * What the benchmarks that race uvfio against C share: the C programs
 * built into bench/bin, processes pinned to one CPU, bench_client runs
 * parsed, servers started and stopped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This tree's root (dist/bench/../..). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * ../shared/bench beside the repository (UVFIO_SHARED names the shared
 * directory elsewhere): the nearest ancestor's `shared/bench`, so a git
 * worktree a level further down finds it too.
 */
function sharedBench(): string {
  if (process.env['UVFIO_SHARED'] !== undefined) return join(process.env['UVFIO_SHARED'], 'bench');
  for (let dir = dirname(ROOT); ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'bench');
    if (existsSync(join(candidate, 'bench_client.c'))) return candidate;
    if (dirname(dir) === dir) return join(dirname(ROOT), 'shared', 'bench');
  }
}
const SHARED = sharedBench();
/** Where build() puts the C programs. */
export const BIN = join(ROOT, 'bench', 'bin');
/** The CPU every process is pinned to (BENCH_CPU, default 0). */
export const CPU = process.env.BENCH_CPU ?? '0';

/** bench_client's key=value figures. */
export type Result = Record<string, number>;

/** Builds bench_client and raw_server (../shared/bench) and irq_client and raw_irq_server (bench/) into BIN. */
export function build(): void {
  mkdirSync(BIN, { recursive: true });
  for (const name of ['bench_client', 'raw_server']) {
    execFileSync('gcc', ['-O2', '-D_GNU_SOURCE', '-o', join(BIN, name), join(SHARED, `${name}.c`)], { stdio: 'inherit' });
  }
  for (const name of ['irq_client', 'raw_irq_server']) {
    execFileSync('gcc', ['-O2', '-D_GNU_SOURCE', '-I', SHARED, '-o', join(BIN, name), join(ROOT, 'bench', `${name}.c`)], { stdio: 'inherit' });
  }
}

/** Parses bench_client's key=value line. */
export function parse(line: string): Result {
  const out: Result = {};
  for (const kv of line.trim().split(/\s+/)) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined && !Number.isNaN(Number(v))) out[k] = Number(v);
  }
  return out;
}

export function pinned(cmd: string, args: string[]): [string, string[]] {
  return ['taskset', ['-c', CPU, cmd, ...args]];
}

export function client(sock: string, args: string[], program = 'bench_client'): Promise<Result> {
  const [cmd, argv] = pinned(join(BIN, program), program === 'bench_client' ? ['-s', sock, '-r', '0', ...args] : ['-s', sock, ...args]);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(parse(out)) : reject(new Error(`${program} ${args.join(' ')} exited with ${code}`))));
  });
}

/** Starts a process and resolves once it printed "ready" (or its socket exists). */
export function start(cmd: string, args: string[], ready: { line?: string; file?: string }): Promise<ChildProcess> {
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

export async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.removeAllListeners('exit');
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
