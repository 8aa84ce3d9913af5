/**
 * Runs the real `uvfio` binary as a user would: spawned processes, a
 * temporary runtime and state directory each, real sockets, a real
 * database file. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/test/cli/harness.js → dist/src/cli/main.js */
export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface Sandbox {
  dir: string;
  runtimeDir: string;
  stateDir: string;
  dbFile: string;
  env: NodeJS.ProcessEnv;
  remove(): void;
}

/** A fresh pair of directories (under /tmp: socket paths must stay short). */
export function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-t-'));
  const runtimeDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  return {
    dir,
    runtimeDir,
    stateDir,
    dbFile: join(stateDir, 'uvfio.db'),
    env: { ...process.env, UVFIO_RUNTIME_DIR: runtimeDir, UVFIO_STATE_DIR: stateDir, UVFIO_LOG_LEVEL: 'info' },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `uvfio ARGS` to completion (killed after `timeoutMs`). */
export function uvfio(sb: Sandbox, args: string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`uvfio ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `uvfio ARGS` that must succeed; returns stdout. */
export async function ok(sb: Sandbox, args: string[]): Promise<string> {
  const r = await uvfio(sb, args);
  if (r.code !== 0) throw new Error(`uvfio ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `uvfio ARGS --json` parsed. */
export async function okJson<T = unknown>(sb: Sandbox, args: string[]): Promise<T> {
  return JSON.parse(await ok(sb, [...args, '--json'])) as T;
}

/**
 * `uvfio ARGS` that must fail the way a user should see it: exit status 1,
 * nothing on stdout, exactly one line `uvfio: …` on stderr. Returns that line.
 */
export async function fails(sb: Sandbox, args: string[]): Promise<string> {
  const r = await uvfio(sb, args);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  if (r.code !== 1 || r.stdout !== '' || lines.length !== 1 || !lines[0]!.startsWith('uvfio: ')) {
    throw new Error(`uvfio ${args.join(' ')}: expected one error line and status 1, got status ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return lines[0]!;
}

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** A running `uvfio daemon`. */
export class Daemon {
  stdout = '';
  readonly logs: LogLine[] = [];
  private stderrTail = '';
  private readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail += d.toString();
      let nl: number;
      while ((nl = this.stderrTail.indexOf('\n')) !== -1) {
        const line = this.stderrTail.slice(0, nl);
        this.stderrTail = this.stderrTail.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', msg: line });
        }
      }
    });
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** Starts `uvfio daemon ARGS` and waits for its "daemon ready" line. */
  static async start(sb: Sandbox, args: string[] = [], timeoutMs = 15_000): Promise<Daemon> {
    const child = spawn(process.execPath, [MAIN, 'daemon', ...args], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const d = new Daemon(child);
    const ready = await d
      .waitFor((l) => l.msg === 'daemon ready', timeoutMs)
      .catch(async (err: Error) => {
        child.kill('SIGKILL');
        throw new Error(`${err.message}\nlogs: ${JSON.stringify(d.logs)}\nstdout: ${d.stdout}`);
      });
    void ready;
    return d;
  }

  /** Resolves with the first log line that matches; rejects on timeout or exit. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      let exited = false;
      void this.exited.then(() => (exited = true));
      const poll = () => {
        const found = this.logs.find(match);
        if (found) return resolve(found);
        if (exited) return reject(new Error('the daemon exited'));
        if (Date.now() > deadline) return reject(new Error(`no matching log line within ${timeoutMs} ms`));
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  /** Sends `signal` and waits for the exit status (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** For after(): never leaves a process behind. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
