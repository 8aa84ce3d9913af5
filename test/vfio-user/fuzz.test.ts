/**
 * Property-based fuzzing of the framer and every decoder with a seeded
 * PRNG: streams of valid, mutated and random messages, cut into random
 * chunks with random fds. Properties: nothing but VfioError is ever thrown;
 * every fd handed in comes out exactly once (in a frame or handed back);
 * no decoder reads a byte outside the message; a decoded message names only
 * fds of its own frame. Set UVFIO_FUZZ_SEED / UVFIO_FUZZ_CASES to explore.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import {
  type DecodeContext,
  decodeCommand,
  decodeReply,
  DEFAULT_MAX_MESSAGE_SIZE,
  type Frame,
  HeaderFlags,
  MessageFramer,
} from '../../src/vfio-user/index.js';
import { concat, guarded, prng } from './harness.js';
import { ctx as deviceCtx, samples } from './samples.js';

const SEED = Number(process.env['UVFIO_FUZZ_SEED'] ?? 0x5eed);
const CASES = Number(process.env['UVFIO_FUZZ_CASES'] ?? 25_000);

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

function contexts(r: Rng): DecodeContext {
  return r.pick<DecodeContext>([
    deviceCtx,
    {},
    { maxDataXferSize: 64 },
    { ...deviceCtx, dmaLayout: 'qemu' },
    { allowDirtyBitmap: true, dmaLayout: 'spec' },
  ]);
}

/** Every fd a decoded message refers to. */
function fdsNamed(v: unknown): number[] {
  if (v === null || typeof v !== 'object') return [];
  const m = (v as { msg?: unknown }).msg as Record<string, unknown> | null | undefined;
  if (m === null || m === undefined || typeof m !== 'object') return [];
  const out: number[] = [];
  if (typeof m['fd'] === 'number') out.push(m['fd']);
  if (Array.isArray(m['fds'])) out.push(...(m['fds'] as number[]));
  return out;
}

describe('fuzz', () => {
  it(`framer + decoders survive ${CASES} seeded cases (seed ${SEED})`, () => {
    const r = prng(SEED);
    let nextFd = 1;
    let frames = 0;
    let decoded = 0;
    const errnos = new Map<string, number>();
    for (let c = 0; c < CASES; c++) {
      const msgs = Array.from({ length: 1 + r.int(4) }, () => (r.next() < 0.75 ? mutated(r) : random(r)));
      const stream = concat(msgs.map((m) => m.bytes));
      const decodeCtx = contexts(r);
      const handedIn: number[] = [];
      const handedOut: number[] = [];
      const failures: string[] = [];
      const onMessage = (f: Frame): void => {
        frames++;
        handedOut.push(...f.fds);
        const g: Frame = { ...f, body: guarded(f.body) };
        try {
          const isReply = (f.flags & HeaderFlags.TYPE_MASK) === HeaderFlags.TYPE_REPLY;
          const d = isReply && r.next() < 0.9 ? decodeReply(g, decodeCtx) : decodeCommand(g, r.next() < 0.7 ? 'server' : 'client', decodeCtx);
          decoded++;
          for (const fd of fdsNamed(d)) {
            if (!f.fds.includes(fd)) failures.push(`case ${c}: decoded message names fd ${fd} not in its frame`);
          }
        } catch (err) {
          if (!isVfioError(err)) failures.push(`case ${c}: ${String((err as Error)?.stack ?? err)}`);
          else errnos.set(err.code, (errnos.get(err.code) ?? 0) + 1);
        }
      };
      const framer = new MessageFramer({
        onMessage,
        maxMessageSize: r.pick([64, 256, 4096, DEFAULT_MAX_MESSAGE_SIZE]),
        fdAttribution: r.next() < 0.8 ? 'last' : 'first',
      });
      // Random cuts; fds ride on random chunks (starts of messages or not).
      const cuts = Array.from({ length: r.int(6) }, () => r.int(stream.length)).sort((a, b) => a - b);
      let prev = 0;
      for (const at of [...cuts, stream.length]) {
        const fds = Array.from({ length: r.next() < 0.3 ? 1 + r.int(3) : 0 }, () => nextFd++);
        handedIn.push(...fds);
        try {
          handedOut.push(...framer.push(guarded(stream.subarray(prev, at)), fds));
        } catch (err) {
          failures.push(`case ${c}: push threw ${String(err)}`);
        }
        prev = at;
      }
      handedOut.push(...framer.close().fds);
      assert.deepEqual(failures, []);
      assert.deepEqual(
        [...handedOut].sort((a, b) => a - b),
        [...handedIn].sort((a, b) => a - b),
        `case ${c}: fds in and out differ`,
      );
    }
    if (process.env["UVFIO_FUZZ_VERBOSE"]) console.log({ frames, decoded, errnos });
    // The fuzzer must reach the decoders, in success and in failure.
    assert.ok(frames > CASES, `only ${frames} frames`);
    assert.ok(decoded > CASES / 20, `only ${decoded} messages decoded`);
    assert.ok((errnos.get('EINVAL') ?? 0) > CASES / 10);
  });
});
