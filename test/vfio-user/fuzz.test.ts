/**
 * Property-based fuzzing with a seeded PRNG: streams of valid, mutated and
 * random messages, cut into random chunks with random fds.
 *
 * - The framer alone: nothing is thrown; every fd handed in comes out
 *   exactly once (in a frame or handed back).
 * - The real session and handlers of a fixture device, over a
 *   MemoryTransport with real fds (eventfds, a memfd, /dev/null): no
 *   handler throws anything but a VfioError (the server would log it as
 *   unexpected); after every case the session answers a probe, or ended
 *   (only ever for a stream that broke); every fd handed in is closed or
 *   kept by the end, when the process has the fds it had before.
 *
 * Set UVFIO_FUZZ_SEED / UVFIO_FUZZ_CASES / UVFIO_FUZZ_SESSION_CASES to explore.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { closeFds, dup, EventFd, eventfd, eventfdWrite, MappedMemory, memfdCreate, openFdCount, sealSize } from '../../src/native/index.js';
import { Command, DEFAULT_MAX_MESSAGE_SIZE, encodeDeviceInfoRequest, type Frame, MessageFramer } from '../../src/vfio-user/index.js';
import { concat, prng } from './harness.js';
import { MemoryPeer } from './memory-peer.js';
import { samples } from './samples.js';
import { startServer } from './server-harness.js';
import { until } from '../support/until.js';

const SEED = Number(process.env['UVFIO_FUZZ_SEED'] ?? 0x5eed);
const CASES = Number(process.env['UVFIO_FUZZ_CASES'] ?? 25_000);
const SESSION_CASES = Number(process.env['UVFIO_FUZZ_SESSION_CASES'] ?? 4_000);

const corpus = samples();
const INTERESTING = [0, 1, 2, 7, 8, 15, 16, 17, 20, 24, 31, 32, 40, 255, 4096, 0x7fffffff, 0x80000000, 0xffffffff];

type Rng = ReturnType<typeof prng>;

function put32(b: Uint8Array, o: number, v: number): void {
  if (o + 4 > b.length) return;
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** A valid sample with a few random mutations; msg_size is usually kept consistent. */
function mutated(r: Rng): { bytes: Uint8Array; fds: number } {
  const s = r.pick(corpus);
  let b: Uint8Array = s.bytes.slice();
  let fds = s.fds;
  const n = r.int(4);
  for (let i = 0; i < n; i++) {
    switch (r.int(8)) {
      case 0: // flip a bit
        b[r.int(b.length)]! ^= 1 << r.int(8);
        break;
      case 1: // an interesting value in a body field
        put32(b, 16 + 4 * r.int(Math.max(1, (b.length - 16) >> 2)), r.pick(INTERESTING));
        break;
      case 2: // truncate the body
        b = b.slice(0, 16 + r.int(b.length - 15));
        break;
      case 3: // extend the body
        b = concat([b, Uint8Array.from({ length: 1 + r.int(40) }, () => r.int(256))]);
        break;
      case 4: // another command id
        b[2] = r.int(21);
        b[3] = 0;
        break;
      case 5: // other header flags
        put32(b, 8, r.pick([0, 1, 2, 0x10, 0x11, 0x20, 0x21, 0x31, r.int(0x100)]));
        break;
      case 6: // another fd count
        fds = r.int(4);
        break;
      default: // an error number
        put32(b, 12, r.pick(INTERESTING));
    }
  }
  // Mostly keep the framing consistent, so the decoders see the mutation.
  if (r.next() < 0.85) put32(b, 4, b.length);
  return { bytes: b, fds };
}

/** Random bytes behind a plausible header. */
function random(r: Rng): { bytes: Uint8Array; fds: number } {
  const body = Uint8Array.from({ length: r.int(120) }, () => (r.next() < 0.4 ? 0 : r.int(256)));
  const b = concat([new Uint8Array(16), body]);
  b[0] = r.int(256);
  b[2] = r.int(21);
  put32(b, 4, r.next() < 0.95 ? b.length : r.pick(INTERESTING));
  put32(b, 8, r.pick([0, 1, 0x10, 0x21]));
  return { bytes: b, fds: r.next() < 0.2 ? r.int(4) : 0 };
}

/** Cuts `stream` at random points. */
function chunks(r: Rng, stream: Uint8Array): Uint8Array[] {
  const cuts = Array.from({ length: r.int(6) }, () => r.int(stream.length)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const at of [...cuts, stream.length]) {
    out.push(stream.subarray(prev, at));
    prev = at;
  }
  return out;
}

describe('fuzz', () => {
  it(`the framer survives ${CASES} seeded cases (seed ${SEED}) and gives every fd one owner`, () => {
    const r = prng(SEED);
    let nextFd = 1;
    let frames = 0;
    for (let c = 0; c < CASES; c++) {
      const msgs = Array.from({ length: 1 + r.int(4) }, () => (r.next() < 0.75 ? mutated(r) : random(r)));
      const stream = concat(msgs.map((m) => m.bytes));
      const handedIn: number[] = [];
      const handedOut: number[] = [];
      const failures: string[] = [];
      const onMessage = (f: Frame): void => {
        frames++;
        handedOut.push(...f.fds);
      };
      const framer = new MessageFramer({
        onMessage,
        maxMessageSize: r.pick([64, 256, 4096, DEFAULT_MAX_MESSAGE_SIZE]),
      });
      // Random cuts; fds ride on random chunks (starts of messages or not).
      for (const chunk of chunks(r, stream)) {
        const fds = Array.from({ length: r.next() < 0.3 ? 1 + r.int(3) : 0 }, () => nextFd++);
        handedIn.push(...fds);
        try {
          handedOut.push(...framer.push(chunk, fds));
        } catch (err) {
          failures.push(`case ${c}: push threw ${String(err)}`);
        }
      }
      handedOut.push(...framer.close().fds);
      assert.deepEqual(failures, []);
      assert.deepEqual(
        [...handedOut].sort((a, b) => a - b),
        [...handedIn].sort((a, b) => a - b),
        `case ${c}: fds in and out differ`,
      );
    }
    assert.ok(frames > CASES, `only ${frames} frames`);
  });

  it(`the real session survives ${SESSION_CASES} seeded cases (seed ${SEED}) over memory with real fds`, async () => {
    const unexpected: string[] = [];
    const log = {
      info: () => {},
      warn: (msg: string, fields?: Record<string, unknown>) => void unexpected.push(`${msg} ${JSON.stringify(fields)}`),
    };
    const baseline = openFdCount();
    // The device answers a DMA doorbell by messages to this peer, which never answers: time out fast.
    const bench = startServer({ limits: { dmaTimeoutMs: 20 }, log });
    const memory = MappedMemory.create('fuzz', 8192);
    const kinds = [EventFd.create(), EventFd.create()].map((e) => ({ fd: e.fd, close: () => e.close() }));
    kinds.push({ fd: memory.fd, close: () => memory.close() });
    const devNull = openSync('/dev/null', 'r');
    kinds.push({ fd: devNull, close: () => closeFds([devNull]) });
    // What a hostile client passes: a blocking eventfd with its counter full,
    // a pipe, a memfd it shrinks and grows as the cases go, a huge sparse one.
    const hostile = hostileFds();
    kinds.push(...hostile.kinds);
    const r = prng(SEED ^ 0x5e55);
    const counts = { answered: 0, ended: 0, broken: 0, replies: 0 };
    let peer = MemoryPeer.attached(bench.server, bench.device);
    await peer.negotiate();
    try {
      for (let c = 0; c < SESSION_CASES; c++) {
        const msgs = Array.from({ length: 1 + r.int(4) }, () => (r.next() < 0.8 ? mutated(r) : random(r)));
        // A message whose msg_size lies may swallow the probe: then silence is no failure.
        const honest = msgs.every((m) => new DataView(m.bytes.buffer, m.bytes.byteOffset).getUint32(4, true) === m.bytes.length);
        bench.device.asyncOps = r.int(4) === 0;
        if (r.int(8) === 0) hostile.reshape(r);
        for (const chunk of chunks(r, concat(msgs.map((m) => m.bytes)))) {
          const fds = Array.from({ length: r.next() < 0.3 ? 1 + r.int(3) : 0 }, () => dup(r.pick(kinds).fd));
          peer.transport.push(chunk, fds);
        }
        peer.write(encodeDeviceInfoRequest(PROBE_ID));
        const outcome = await probe(peer, honest ? 3000 : 30);
        counts.replies += outcome.replies;
        if (outcome.answered) {
          counts.answered++;
          continue;
        }
        if (outcome.hungUp) counts.ended++;
        else if (honest) assert.fail(`case ${c}: an honest stream got no answer to the probe`);
        else counts.broken++;
        peer.close();
        peer.dropFrames();
        peer = MemoryPeer.attached(bench.server, bench.device);
        await peer.negotiate();
      }
    } finally {
      peer.close();
      peer.dropFrames();
      await bench.close();
      for (const k of kinds) k.close();
    }
    if (process.env['UVFIO_FUZZ_VERBOSE']) console.log(counts);
    assert.deepEqual(unexpected, []);
    await until(() => openFdCount() === baseline, `fds back to ${baseline} (now ${openFdCount()})`, 2000);
    // The fuzzer must reach the handlers, in success and in failure, and end sessions now and then.
    assert.ok(counts.answered > SESSION_CASES / 2, JSON.stringify(counts));
    assert.ok(counts.replies > SESSION_CASES, JSON.stringify(counts));
  });
});

const PROBE_ID = 0xfffe;

/**
 * The fds a hostile client hands over: a blocking eventfd whose counter it
 * filled (a write to it would block), a pipe (a FIFO opened read-write), a
 * memfd without seals that `reshape` truncates or grows (touching a page
 * it cut off through a mapping would be SIGBUS), and a sealed sparse memfd
 * of 2 TiB.
 */
function hostileFds(): { kinds: { fd: number; close: () => void }[]; reshape: (r: Rng) => void } {
  const full = eventfd(0, { nonblock: false });
  eventfdWrite(full, 2n ** 64n - 2n);
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-fz-'));
  execFileSync('mkfifo', [join(dir, 'pipe')]);
  const pipe = openSync(join(dir, 'pipe'), 'r+');
  rmSync(dir, { recursive: true, force: true });
  const shrinking = memfdCreate('shrinking', 8192);
  const huge = memfdCreate('huge', 2 * 1024 ** 4);
  sealSize(huge);
  return {
    kinds: [full, pipe, shrinking, huge].map((fd) => ({ fd, close: () => closeFds([fd]) })),
    reshape: (r) => ftruncateSync(shrinking, r.pick([0, 100, 4096, 8192, 65536])),
  };
}

/** Waits for the probe's answer, counting the other replies; stops at a hang-up or after `ms`. */
async function probe(peer: MemoryPeer, ms: number): Promise<{ answered: boolean; hungUp: boolean; replies: number }> {
  let replies = 0;
  const end = Date.now() + ms;
  for (;;) {
    let f: Frame | null;
    try {
      f = await peer.next(Math.max(1, end - Date.now()));
    } catch {
      return { answered: false, hungUp: false, replies };
    }
    if (f === null) return { answered: false, hungUp: true, replies };
    closeFds(f.fds);
    if (f.msgId === PROBE_ID && f.cmd === Command.DEVICE_GET_INFO) return { answered: true, hungUp: false, replies };
    replies++;
  }
}
