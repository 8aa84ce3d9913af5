/**
 * Region accesses answered in the native layer (RegionAnswers): a real
 * server on a real socket here, its client in a process of its own
 * (region-answers-client.ts), so that both ways of answering are used: at
 * the socket's readable events, and while it lingers for the next request
 * (which only a client elsewhere can send in time). The device counts what
 * reaches its JavaScript: far fewer calls than accesses means the native
 * layer answered the rest.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { RegionFlags, VfioCore, VfioDevice, type DeviceInfo, type DeviceOptions, type RegionInfo } from '../../src/core/index.js';
import {
  Command,
  encodeRegionRead,
  encodeRegionWrite,
  MESSAGE_CHANNEL,
  VfioUserServer,
  type MessageTrace,
  type ServerLimits,
  type SessionCounters,
} from '../../src/vfio-user/index.js';
import { RawPeer } from './server-harness.js';
import { OPS, PLAIN, ROM, type MixedResult, type OddReply, type OddResult } from './region-answers-client.js';

const CLIENT = fileURLToPath(new URL('./region-answers-client.js', import.meta.url));
const PLAIN_SIZE = 256 * 1024;
const SMALL_SIZE = 4096;
/** The longest any one step may take. */
const STEP_MS = 10_000;
/** Each test's bound: at most two client processes' steps. */
const TEST_MS = 20_000;

/**
 * Region 0: plain memory (the native layer's). Region 1: served only by
 * regionRead/regionWrite. Region 2: plain to read, but a write has a side
 * effect (stored inverted), so only reads may be answered natively.
 */
class AnswersDevice extends VfioDevice {
  readonly plain = Uint8Array.from({ length: PLAIN_SIZE }, (_, i) => (i * 7 + 1) & 0xff);
  readonly ops = Uint8Array.from({ length: SMALL_SIZE }, (_, i) => (i * 3) & 0xff);
  readonly rom = Uint8Array.from({ length: SMALL_SIZE }, (_, i) => (i * 5 + 3) & 0xff);
  /** Calls into JavaScript for accesses: regionRead, regionWrite, and regionMemory of part of a region. */
  reads = 0;
  writes = 0;
  views = 0;
  /** regionRead calls per region */
  readonly readsOf = [0, 0, 0];

  get jsCalls(): number {
    return this.reads + this.writes + this.views;
  }

  resetCounts(): void {
    this.reads = this.writes = this.views = 0;
    this.readsOf.fill(0);
  }

  #bytes(index: number): Uint8Array {
    return [this.plain, this.ops, this.rom][index]!;
  }

  override getInfo(): DeviceInfo {
    return { flags: 0, numRegions: 3, numIrqs: 0 };
  }

  override getRegionInfo(index: number): RegionInfo {
    if (index > ROM) return super.getRegionInfo(index);
    return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: this.#bytes(index).length };
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void {
    this.reads++;
    this.readsOf[index]!++;
    dest.set(this.#bytes(index).subarray(offset, offset + dest.length));
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void {
    this.writes++;
    const to = this.#bytes(index);
    if (index === ROM) for (let i = 0; i < src.length; i++) to[offset + i] = ~src[i]! & 0xff;
    else to.set(src, offset);
  }

  override regionMemory(index: number, offset: number, count: number, write: boolean): Uint8Array | null {
    if (index !== PLAIN && !(index === ROM && !write)) return null;
    const bytes = this.#bytes(index);
    if (offset + count > bytes.length) return null;
    // The whole region is what the session asks for once, at bind.
    if (offset !== 0 || count !== bytes.length) this.views++;
    return bytes.subarray(offset, offset + count);
  }
}

interface Served {
  device: AnswersDevice;
  server: VfioUserServer;
  path: string;
  counters(): SessionCounters;
  close(): Promise<void>;
}

/** A server of one AnswersDevice in a temporary directory. */
function serve(limits: Partial<ServerLimits> = {}): Served {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-answers-'));
  const core = new VfioCore();
  const device = new AnswersDevice({ name: 'answers0', core } satisfies DeviceOptions);
  device.register();
  const server = new VfioUserServer({ core, socketDir: join(dir, 'sockets'), limits });
  return {
    device,
    server,
    path: server.socketPath(device.name)!,
    counters: () => {
      const clients = server.clients(device);
      assert.equal(clients.length, 1, 'one client');
      return clients[0]!.counters;
    },
    close: async () => {
      await server.close();
      if (device.state === 'registered') await device.unregister();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `fn` with a server and a raw peer of its device, negotiated, here in this process; both closed after. */
async function withPeer(fn: (s: Served, peer: RawPeer) => Promise<void>): Promise<void> {
  const s = serve();
  const peer = new RawPeer(s.path);
  try {
    await peer.negotiate();
    await fn(s, peer);
  } finally {
    peer.close();
    await s.close();
  }
}

/** region-answers-client.ts, running: its JSON lines, one at a time. */
class ClientProcess {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #lines: AsyncIterator<string>;
  readonly #exited: Promise<void>;

  constructor(path: string, mode: 'mixed' | 'odd', arg: object = {}) {
    this.#child = spawn(process.execPath, [CLIENT, path, mode, JSON.stringify(arg)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
    this.#exited = new Promise((resolve) => this.#child.on('close', () => resolve()));
  }

  /** The next line it writes, parsed; rejects if it exits first or takes over STEP_MS. */
  async next<T>(): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the client process wrote nothing within ${STEP_MS} ms`)), STEP_MS);
    });
    try {
      const line = await Promise.race([this.#lines.next(), late]);
      if (line.done === true) throw new Error(`the client process exited (${this.#child.exitCode ?? this.#child.signalCode})`);
      return JSON.parse(line.value) as T;
    } finally {
      clearTimeout(timer);
    }
  }

  go(): void {
    this.#child.stdin.write('go\n');
  }

  /** Lets it close its connection and exit; killed if it has not within STEP_MS. */
  async end(): Promise<void> {
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STEP_MS);
    await this.#exited;
    clearTimeout(timer);
  }
}

interface Run<T> {
  result: T;
  /** how much the session's counters grew */
  counted: SessionCounters;
  /** REGION_READs and REGION_WRITEs published on MESSAGE_CHANNEL (with `trace`) */
  traced: MessageTrace[];
}

/**
 * Runs the client's `mode` workload against `s` once it is connected and
 * ready (its first reads done): the device's counts start from 0 there,
 * and with `trace` a MESSAGE_CHANNEL subscriber listens from there on.
 */
async function workload<T>(s: Served, mode: 'mixed' | 'odd', options: { arg?: object; trace?: boolean } = {}): Promise<Run<T>> {
  const child = new ClientProcess(s.path, mode, options.arg);
  const traced: MessageTrace[] = [];
  const onMessage = (m: unknown): void => {
    const t = m as MessageTrace;
    if (t.cmd === Command.REGION_READ || t.cmd === Command.REGION_WRITE) traced.push(t);
  };
  try {
    await child.next<{ ready: true }>();
    const before = { ...s.counters() };
    s.device.resetCounts();
    if (options.trace === true) subscribe(MESSAGE_CHANNEL, onMessage);
    child.go();
    const result = await child.next<T>();
    const after = s.counters();
    const counted = Object.fromEntries(
      Object.entries(after).map(([k, v]) => [k, v - before[k as keyof SessionCounters]]),
    ) as unknown as SessionCounters;
    return { result, counted, traced };
  } finally {
    unsubscribe(MESSAGE_CHANNEL, onMessage);
    await child.end();
  }
}

/** Every access and reply counted, whoever answered it: exactly what the client sent and got. */
function assertCounted(counted: SessionCounters, r: MixedResult): void {
  assert.deepEqual(counted, { messagesIn: r.accesses, repliesOut: r.replies, errors: 0, bytesIn: r.bytesIn, bytesOut: r.bytesOut, interrupts: 0 });
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

type OddRun = Run<OddResult> & { device: AnswersDevice };

/**
 * The "odd" workload twice, each on a fresh server: with answers, and
 * with a trace subscriber (every access through the session: the
 * reference). Checks both alike; `reply` finds a named reply of the first.
 */
async function oddBothWays(
  limits: Partial<ServerLimits> = {},
  arg: object = {},
): Promise<{ answered: OddRun; served: OddRun; reply: (name: string) => Exclude<OddReply, 'posted'> }> {
  const run = async (trace: boolean): Promise<OddRun> => {
    const s = serve(limits);
    try {
      return { ...(await workload<OddResult>(s, 'odd', { trace, arg })), device: s.device };
    } finally {
      await s.close();
    }
  };
  const answered = await run(false);
  const served = await run(true);
  const r = answered.result;
  assert.equal(r.mismatches, 0, r.firstMismatch ?? '');
  assert.equal(served.result.mismatches, 0, served.result.firstMismatch ?? '');
  assert.deepEqual(r.replies, served.result.replies, 'the same replies with and without the native layer');
  assert.deepEqual(answered.counted, served.counted, 'the same counts');
  assert.deepEqual(answered.device.plain, served.device.plain);
  assert.deepEqual(answered.device.ops, served.device.ops);
  assert.deepEqual(answered.device.rom, served.device.rom);
  const reply = (name: string): Exclude<OddReply, 'posted'> => {
    const found = r.replies.find(([n]) => n === name);
    assert.ok(found !== undefined && found[1] !== 'posted', name);
    return found[1];
  };
  return { answered, served, reply };
}

const MIXED = { seed: 7, pairs: 2000 };
const EINVAL = 22;

describe('region accesses answered in the native layer', () => {
  it(
    'serves sequential and pipelined reads and writes of plain memory right, mostly without JavaScript, and counts them all',
    { timeout: TEST_MS },
    async (t) => {
      const s = serve();
      try {
        const { result: r, counted } = await workload<MixedResult>(s, 'mixed', { arg: MIXED });
        assert.equal(r.mismatches, 0, r.firstMismatch ?? '');
        assert.ok(r.accesses > 4000, `${r.accesses} accesses`);
        assert.equal(sha256(s.device.plain), r.sha256, 'the device holds what the client wrote');
        assertCounted(counted, r);
        t.diagnostic(`${r.accesses} accesses in ${r.ms} ms, ${s.device.jsCalls} reached JavaScript`);
        // Without the native layer each access is one call (the next test): the rest were answered there.
        assert.ok(s.device.jsCalls < r.accesses / 2, `${s.device.jsCalls} of ${r.accesses} accesses reached the device's JavaScript`);
      } finally {
        await s.close();
      }
    },
  );

  it(
    'answers nothing natively while the message channel has a subscriber: every access is traced and served in JavaScript',
    { timeout: TEST_MS },
    async () => {
      const s = serve();
      try {
        const { result: r, counted, traced } = await workload<MixedResult>(s, 'mixed', { arg: MIXED, trace: true });
        assert.equal(r.mismatches, 0, r.firstMismatch ?? '');
        assert.equal(sha256(s.device.plain), r.sha256);
        assertCounted(counted, r);
        assert.equal(traced.length, r.accesses, 'every access published');
        assert.ok(
          traced.every((a) => a.errno === 0 && !a.posted === (a.reply !== null)),
          'all served, every unposted one answered',
        );
        assert.equal(s.device.jsCalls, r.accesses, 'one call into the device per access');
      } finally {
        await s.close();
      }
    },
  );

  it(
    'leaves what it cannot serve as the session would to the session, between answered accesses: the same replies either way',
    { timeout: TEST_MS },
    async (t) => {
      const { answered, served, reply } = await oddBothWays();

      // And right, not just the same.
      for (const name of [
        'read past the end',
        'read starting past the end',
        'read at 2^63',
        'read of region 7 (none)',
        'read of region 20 (beyond the table)',
        'read with 4 bytes too many',
        'read with 4 bytes too few',
        'read with the ERROR flag',
        'write past the end',
        'write whose count is 4 more than its data',
      ]) {
        assert.equal(reply(name).errorNo, EINVAL, name);
      }
      assert.equal(reply('read of 0 bytes').errorNo, 0);
      assert.equal(reply('read of 0 bytes').size, 32);
      assert.equal(reply('read of 64 KiB + 1').size, 32 + 64 * 1024 + 1);
      assert.equal(reply('read with an unknown flag').errorNo, 0);
      const region1 = Buffer.from(Uint8Array.from({ length: 16 }, (_, i) => ((8 + i) * 3) & 0xff)).toString('hex');
      assert.equal(reply('read of region 1 (not plain)').body.slice(32), region1);
      // Region 1 is read only by regionRead: its two reads, sequential and pipelined.
      assert.equal(answered.device.readsOf[OPS], 4);
      assert.ok(answered.counted.errors >= 11, `${answered.counted.errors} errors`);
      // The answerable accesses around them were mostly answered natively.
      t.diagnostic(`${answered.counted.messagesIn} messages: ${answered.device.jsCalls} calls into the device, ${served.device.jsCalls} traced`);
      assert.ok(
        answered.device.jsCalls < served.device.jsCalls / 2,
        `${answered.device.jsCalls} calls into the device, ${served.device.jsCalls} without answers`,
      );
    },
  );

  it(
    'a workload under the set lock taken and a trace subscribed, on and off across it: no reply while the lock is held, every reply traced while subscribed',
    { timeout: TEST_MS },
    async () => {
      const s = serve();
      try {
        const child = new ClientProcess(s.path, 'mixed', { seed: 11, pairs: 6000 });
        await child.next<{ ready: true }>();
        const lock = s.device.devSet!.lock;
        child.go();
        let done = false;
        const result = child.next<MixedResult>().finally(() => (done = true));
        let rounds = 0;
        for (; !done && rounds < 500; rounds++) {
          // Held across turns of the loop (another file's op): the set's accesses wait, none is answered natively.
          await lock.runAsync(async () => {
            const before = s.counters().repliesOut;
            await sleep(3);
            assert.equal(s.counters().repliesOut, before, `a reply while the set lock was held (round ${rounds})`);
          });
          await sleep(2);
          // Subscribed: every reply sent meanwhile went through the session and was published.
          let published = 0;
          const onMessage = (m: unknown): void => {
            if ((m as MessageTrace).reply !== null) published++;
          };
          subscribe(MESSAGE_CHANNEL, onMessage);
          const before = s.counters().repliesOut;
          await sleep(3);
          const replied = s.counters().repliesOut - before;
          unsubscribe(MESSAGE_CHANNEL, onMessage);
          assert.equal(published, replied, `replies not traced while a subscriber listened (round ${rounds})`);
          await sleep(2);
        }
        const r = await result;
        assert.equal(r.mismatches, 0, r.firstMismatch ?? '');
        assert.equal(sha256(s.device.plain), r.sha256, 'the device holds what the client wrote');
        assert.ok(rounds >= 3, `only ${rounds} rounds while the workload ran`);
        await child.end();
      } finally {
        await s.close();
      }
    },
  );

  it(
    'large writes land in place: answered in the native layer when all of the data comes in its wait, else finished by the session',
    { timeout: TEST_MS },
    () =>
      withPeer(async (s, peer) => {
        const fill = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 11 + seed) & 0xff);
        const ok = async (id: number): Promise<void> => {
          const r = (await peer.next(5000))!;
          assert.equal(r.msgId, id);
          assert.equal(r.errorNo, 0, `write ${id} failed`);
        };
        // The first comes through the session; the socket then reads heads first.
        const a = fill(200 * 1024, 1);
        peer.write(encodeRegionWrite(1, 0, PLAIN, a));
        await ok(1);
        // All of it there at once (the kernel takes 100 KiB whole): the native layer waits it in place and answers.
        const b = fill(100 * 1024, 2);
        const before = s.device.jsCalls;
        peer.write(encodeRegionWrite(2, 4096, PLAIN, b));
        await ok(2);
        assert.equal(s.device.jsCalls, before, 'no call into the device: answered in the native layer');
        // Half of it now, half 50 ms later: what came lands in the wait, the session takes the rest where it began.
        const c = fill(160 * 1024, 3);
        const bytes = encodeRegionWrite(3, 64 * 1024, PLAIN, c);
        peer.write(bytes.subarray(0, 32 + 80 * 1024));
        await sleep(50);
        assert.deepEqual(s.device.plain.subarray(64 * 1024, 144 * 1024), c.subarray(0, 80 * 1024), 'the first half landed before the rest came');
        peer.write(bytes.subarray(32 + 80 * 1024));
        await ok(3);
        const expected = new Uint8Array(64 * 1024 + c.length);
        expected.set(a, 0);
        expected.set(b, 4096);
        expected.set(c, 64 * 1024);
        assert.deepEqual(s.device.plain.subarray(0, expected.length), expected);
        assert.equal(s.counters().errors, 0);
      }),
  );

  it(
    'a read larger than 64 KiB is answered in the native layer; what its client does not take in time is queued, whole and in order',
    { timeout: TEST_MS },
    () =>
      withPeer(async (s, peer) => {
        // The first access after VERSION reaches the session: answers open at the end of an event that finds them allowed.
        peer.write(encodeRegionRead(9, 0, PLAIN, 4));
        await peer.next(5000);
        const before = s.device.jsCalls;
        // 200 KiB fits the socket's buffer; 256 KiB does not, and this client
        // (in the server's own process) cannot read while the server waits:
        // the rest of its reply is queued and sent as the client reads.
        for (const [id, offset, count] of [
          [1, 4096, 200 * 1024],
          [2, 0, 256 * 1024],
          [3, 100, 4],
        ] as const) {
          peer.write(encodeRegionRead(id, offset, PLAIN, count));
          const r = (await peer.next(5000))!;
          assert.equal(r.msgId, id);
          assert.equal(r.errorNo, 0);
          assert.deepEqual(r.body.subarray(16), s.device.plain.subarray(offset, offset + count), `read ${id}`);
        }
        assert.equal(s.device.jsCalls, before, 'no call into the device: answered in the native layer');
        assert.equal(s.counters().repliesOut, 5);
      }),
  );

  it('answers no access over a max_data_xfer_size below 64 KiB: the session refuses it as ever', { timeout: TEST_MS }, async () => {
    const xfer = 4096;
    const { answered, served, reply } = await oddBothWays({ maxDataXferSize: xfer }, { xfer });
    assert.equal(reply('read of max_data_xfer_size').errorNo, 0);
    assert.equal(reply('read of max_data_xfer_size').size, 32 + xfer);
    assert.equal(reply('read of max_data_xfer_size + 1').errorNo, EINVAL);
    assert.equal(reply('read of 64 KiB + 1').errorNo, EINVAL);
    assert.ok(answered.device.jsCalls < served.device.jsCalls / 2, `${answered.device.jsCalls} calls, ${served.device.jsCalls} without answers`);
  });
});
