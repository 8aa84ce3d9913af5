/**
 * The hostile-client harness: the real `uvfio daemon` (spawned, with its
 * own temporary runtime and state directories), a bystander device and an
 * attacker device on it, and a probe that keeps asking the bystander, the
 * control socket and the process whether they are still fine while an
 * attack runs. Attacks that need a device the daemon does not have (one
 * that does DMA, one whose ops never settle) run against server-process.ts
 * instead (`Hostile.startServer`): the real server in a process of its
 * own, with test fixture devices and no control socket.
 *
 * What "fine" means, checked every PROBE_EVERY_MS during an attack:
 *  - the bystander answers VERSION and a 4-byte config-space read through a
 *    fresh real client, all within PROBE_DEADLINE_MS;
 *  - the control socket answers `list` within PROBE_DEADLINE_MS;
 *  - the daemon process is alive.
 * After the attacker left (`recovered()`): the daemon's fd count is back to
 * its baseline exactly, and its RSS to within RSS_TOLERANCE of it. Not
 * exactly: V8 keeps the heap pages it grew into during a burst of garbage
 * (tens of thousands of requests grow a quiet daemon by some 40 MiB that
 * it keeps until a later collection), and malloc keeps some too; memory
 * an attack pins grows it by far more (the pipelined reads pinned
 * 200 MiB). Every wait is bounded in time, every loop in count.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from '../../src/cli/client.js';
import { PciRegion } from '../../src/base/uapi.js';
import { VfioUserClient, type VfioUserClientOptions } from '../../src/vfio-user/client.js';
import type { ServerLimits } from '../../src/vfio-user/negotiation.js';
import { Daemon, okJson, sandbox, type LogLine, type Sandbox } from '../cli/harness.js';
import type { FixtureOptions } from '../vfio-user/fixture-device.js';

/** How often the probe asks while an attack runs. */
export const PROBE_EVERY_MS = 200;
/** How long one probe (connect, VERSION, config read; or `list`) may take. */
export const PROBE_DEADLINE_MS = 1_000;
/** How far above its baseline the daemon's RSS may stay once the attacker left. */
export const RSS_TOLERANCE = 48 * 1024 * 1024;
/** How long the daemon has to get back to its baseline once the attacker left. */
export const RECOVERY_MS = 10_000;

export interface Device {
  uuid: string;
  socket: string;
}

/** The process under attack: the daemon, or server-process.ts. */
export interface Target {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  kill(): void;
}

export interface ServerProcessOptions {
  /** The attacker fixture device's options (async ops, a delay, ...). */
  attacker?: Omit<FixtureOptions, 'name' | 'core'>;
  limits?: Partial<ServerLimits>;
}

const SERVER_PROCESS = fileURLToPath(new URL('./server-process.js', import.meta.url));

/** server-process.ts, running (see its comment), with the daemon's Target face. */
class ServerProcess implements Target {
  readonly logs: LogLine[] = [];
  readonly #exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => {
      tail += d.toString();
      let nl: number;
      while ((nl = tail.indexOf('\n')) !== -1) {
        const line = tail.slice(0, nl);
        tail = tail.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', msg: line });
        }
      }
    });
    this.#exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static async start(dir: string, options: ServerProcessOptions): Promise<{ proc: ServerProcess; ready: LogLine }> {
    const child = spawn(process.execPath, [SERVER_PROCESS, JSON.stringify({ dir, ...options })], { stdio: ['ignore', 'ignore', 'pipe'] });
    const proc = new ServerProcess(child);
    try {
      return { proc, ready: await proc.waitFor((l) => l.msg === 'daemon ready', 15_000) };
    } catch (err) {
      proc.kill();
      throw new Error(`${(err as Error).message}\nlogs: ${JSON.stringify(proc.logs)}`, { cause: err });
    }
  }

  async waitFor(match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error('the server process exited');
      if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export interface HostileOptions {
  /** The attacker's device type, `parent/type` (default `mtty/mtty-1`). */
  attacker?: string;
  /** More `uvfio daemon` arguments (limits, for instance). */
  daemonArgs?: string[];
}

/** One probe that went wrong: when (ms into the attack) and what. */
export interface ProbeFailure {
  atMs: number;
  what: string;
}

export interface AttackReport<T> {
  /** What the attack returned. */
  result: T;
  /** Probes completed while it ran. */
  probes: number;
}

/** Resources of a process, from /proc. */
export interface Usage {
  rss: number;
  fds: number;
}

/** Reads the RSS and open fd count of `pid`. */
export function usageOf(pid: number): Usage {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (kb === null) throw new Error(`no VmRSS for pid ${pid}`);
  return { rss: Number(kb[1]) * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Rejects with `what` if `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A daemon with a bystander and an attacker device; see the file comment. */
export class Hostile {
  /** Usage once the daemon settled, before any attack. */
  baseline: Usage = { rss: 0, fds: 0 };

  private constructor(
    readonly sb: Sandbox,
    /** The process under attack (the daemon, or server-process.ts). */
    readonly daemon: Target,
    readonly bystander: Device,
    readonly attacker: Device,
    /** The daemon's control socket; null for server-process.ts. */
    private readonly controlSocket: string | null,
  ) {}

  /** The daemon's pid. */
  get pid(): number {
    return this.daemon.child.pid!;
  }

  /** Starts the daemon and both devices, probes once, and takes the baseline. */
  static async start(options: HostileOptions = {}): Promise<Hostile> {
    const sb = sandbox();
    let daemon: Daemon | undefined;
    try {
      daemon = await Daemon.start(sb, ['--no-defaults', ...(options.daemonArgs ?? [])]);
      const bystander = await startDevice(sb, 'mtty/mtty-1');
      const attacker = await startDevice(sb, options.attacker ?? 'mtty/mtty-1');
      return await new Hostile(sb, daemon, bystander, attacker, `${sb.runtimeDir}/control.sock`).ready();
    } catch (err) {
      daemon?.kill();
      sb.remove();
      throw err;
    }
  }

  /**
   * Starts server-process.ts (fixture devices "bystander" and "attacker",
   * each in a set of its own), probes once, and takes the baseline. The
   * probe has no control socket to ask there.
   */
  static async startServer(options: ServerProcessOptions = {}): Promise<Hostile> {
    const sb = sandbox();
    let proc: ServerProcess | undefined;
    try {
      const started = await ServerProcess.start(`${sb.runtimeDir}/devices`, options);
      proc = started.proc;
      const device = (name: string): Device => ({ uuid: name, socket: started.ready[name] as string });
      return await new Hostile(sb, proc, device('bystander'), device('attacker'), null).ready();
    } catch (err) {
      proc?.kill();
      sb.remove();
      throw err;
    }
  }

  /** Warms the paths the probe takes (a first client, a first list), then takes the baseline. */
  private async ready(): Promise<this> {
    for (let i = 0; i < 3; i++) {
      const failure = await this.probeOnce();
      if (failure !== null) throw new Error(`the bystander fails before any attack: ${failure}`);
    }
    this.baseline = await this.settledUsage();
    return this;
  }

  /** A real client of the attacker's device (the caller closes it). */
  connectAttacker(options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
    return VfioUserClient.connect(this.attacker.socket, options);
  }

  /**
   * Runs `attack` while probing every PROBE_EVERY_MS; fails (after the
   * attack ended) if any probe failed, if none completed, or if the daemon
   * died. The attack itself must be bounded in time.
   */
  async underAttack<T>(attack: () => Promise<T>): Promise<AttackReport<T>> {
    const failures: ProbeFailure[] = [];
    const start = Date.now();
    let probes = 0;
    let attacking = true;
    const probing = (async () => {
      // Bounded: the attack is, and each round takes at least PROBE_EVERY_MS.
      while (attacking) {
        const t = Date.now();
        const failure = await this.probeOnce();
        if (failure !== null) failures.push({ atMs: t - start, what: failure });
        else probes++;
        const rest = PROBE_EVERY_MS - (Date.now() - t);
        if (attacking && rest > 0) await sleep(rest);
      }
    })();
    let result: T;
    try {
      result = await attack();
    } finally {
      attacking = false;
      await probing;
    }
    assert.deepEqual(failures, [], `the bystander suffered during the attack (${probes} probes passed)`);
    assert.ok(probes > 0, 'no probe completed during the attack');
    return { result, probes };
  }

  /**
   * One round of the probe; null when all is well, else what failed. Never
   * throws and never takes much longer than PROBE_DEADLINE_MS.
   */
  async probeOnce(): Promise<string | null> {
    if (!this.alive()) return `the daemon exited (${this.daemon.child.exitCode ?? this.daemon.child.signalCode})`;
    const device = within(this.probeBystander(), PROBE_DEADLINE_MS, 'bystander VERSION + config read');
    const control = this.controlSocket === null ? null : this.probeControl(this.controlSocket);
    const [d, c] = await Promise.allSettled([device, control]);
    const problems: string[] = [];
    if (d.status === 'rejected') problems.push((d.reason as Error).message);
    if (c.status === 'rejected') problems.push((c.reason as Error).message);
    if (!this.alive()) problems.push('the daemon exited');
    return problems.length === 0 ? null : problems.join('; ');
  }

  /**
   * Waits (`withinMs`, default RECOVERY_MS) for the daemon to get back to its
   * baseline: fds exactly, RSS within RSS_TOLERANCE. Call once every
   * attacker client is closed.
   */
  async recovered(withinMs = RECOVERY_MS): Promise<Usage> {
    const deadline = Date.now() + withinMs;
    let now = usageOf(this.pid);
    while (Date.now() < deadline) {
      now = usageOf(this.pid);
      if (now.fds <= this.baseline.fds && now.rss <= this.baseline.rss + RSS_TOLERANCE) break;
      await sleep(100);
    }
    assert.ok(this.alive(), 'the daemon is alive after the attack');
    assert.ok(now.fds <= this.baseline.fds, `the daemon holds ${now.fds} fds after the attack, ${this.baseline.fds} before`);
    assert.ok(
      now.rss <= this.baseline.rss + RSS_TOLERANCE,
      `the daemon's RSS is ${mib(now.rss)} after the attack, ${mib(this.baseline.rss)} before (tolerance ${mib(RSS_TOLERANCE)})`,
    );
    const failure = await this.probeOnce();
    assert.equal(failure, null, 'the bystander answers after the attack');
    return now;
  }

  /** Stops the daemon with SIGTERM; it must exit 0 within its shutdown bound. */
  async stop(): Promise<void> {
    try {
      const code = await this.daemon.stop('SIGTERM', 15_000);
      assert.equal(code, 0, `the daemon exits 0 after the attack (logs: ${JSON.stringify(this.daemon.logs.slice(-5))})`);
    } finally {
      this.kill();
    }
  }

  /** For after(): no process or directory left behind. */
  kill(): void {
    this.daemon.kill();
    this.sb.remove();
  }

  alive(): boolean {
    return this.daemon.child.exitCode === null && this.daemon.child.signalCode === null;
  }

  /** `list` on the control socket within the deadline, showing the bystander. */
  private async probeControl(path: string): Promise<void> {
    const listed = await within(
      request(path, 'list', {}, { connectTimeoutMs: PROBE_DEADLINE_MS, replyTimeoutMs: PROBE_DEADLINE_MS }),
      PROBE_DEADLINE_MS,
      'control list',
    );
    if (!listed.devices.some((x) => x.uuid === this.bystander.uuid)) throw new Error('list does not show the bystander');
  }

  private async probeBystander(): Promise<void> {
    const client = await VfioUserClient.connect(this.bystander.socket, { timeoutMs: PROBE_DEADLINE_MS });
    try {
      const id = await client.regionRead(PciRegion.CONFIG, 0, 4);
      // mtty: Red Hat's 1b36:... or the kernel sample's vendor; any non-empty id.
      if (id.length !== 4 || (id[0] === 0xff && id[1] === 0xff)) throw new Error('config space reads no vendor id');
    } finally {
      client.close();
    }
  }

  /** Usage once two readings a little apart agree on fds (teardown is asynchronous). */
  private async settledUsage(): Promise<Usage> {
    let last = usageOf(this.pid);
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      const now = usageOf(this.pid);
      if (now.fds === last.fds) return now;
      last = now;
    }
    return last;
  }
}

async function startDevice(sb: Sandbox, spec: string): Promise<Device> {
  const [parent, type] = spec.split('/') as [string, string];
  const dev = await okJson<{ uuid: string; socket: string }>(sb, ['start', '-p', parent, '-t', type]);
  return { uuid: dev.uuid, socket: dev.socket };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Hostile.start for one test file: every daemon it starts is killed (and its directory removed) after the file's tests. */
export function hostileStarter(): (options?: HostileOptions) => Promise<Hostile> {
  const started: Hostile[] = [];
  after(() => {
    for (const h of started) h.kill();
  });
  return async (options) => {
    const h = await Hostile.start(options);
    started.push(h);
    return h;
  };
}
