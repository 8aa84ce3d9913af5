/**
 * Test helpers: a seeded PRNG, a recording framer that tracks every fd, and
 * a bounds-checking view that throws on any read outside a byte array.
 */
import { copyFrame, type Frame, type FramerOptions, MessageFramer } from '../../src/vfio-user/index.js';

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(a: readonly T[]): T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: (arr) => arr[int(arr.length)]! };
}

/** A framer that keeps copies of the frames it emits and the fds it returns. */
export class Recorder {
  readonly frames: Frame[] = [];
  readonly returned: number[] = [];
  readonly framer: MessageFramer;

  constructor(options: Omit<FramerOptions, 'onMessage'> & { onMessage?: (f: Frame) => void } = {}) {
    this.framer = new MessageFramer({
      ...options,
      onMessage: (f) => {
        this.frames.push(copyFrame(f));
        options.onMessage?.(f);
      },
    });
  }

  push(chunk: Uint8Array, fds: readonly number[] = []): void {
    this.returned.push(...this.framer.push(chunk, fds));
  }

  close(): boolean {
    const { fds, truncated } = this.framer.close();
    this.returned.push(...fds);
    return truncated;
  }

  /** Every fd that left the framer: in frames, or returned to close. */
  allFdsOut(): number[] {
    return [...this.frames.flatMap((f) => f.fds), ...this.returned];
  }
}

/** Joins byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Cuts `b` at the given offsets (sorted, within bounds). */
export function cut(b: Uint8Array, at: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of at) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

/**
 * A proxy of `b` whose indexed reads throw outside [0, length): decoders
 * read bytes by index, so an out-of-bounds read shows up as a RangeError
 * instead of a silent `undefined`. Methods run on the real array.
 */
export function guarded(b: Uint8Array): Uint8Array {
  return new Proxy(b, {
    get(target, key, _receiver) {
      if (typeof key === 'string' && key !== '' && !Number.isNaN(Number(key))) {
        const i = Number(key);
        if (!Number.isInteger(i) || i < 0 || i >= target.length) {
          throw new RangeError(`out-of-bounds read of byte ${key} of ${target.length}`);
        }
        return target[i];
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** A little-endian field of a hand-built message: [width in bytes, value]. */
export type Field = [1 | 2 | 4 | 8, number | bigint];

/** A body from little-endian fields and raw byte runs. */
export function b(...fields: (Field | Uint8Array)[]): Uint8Array {
  const parts: number[] = [];
  for (const f of fields) {
    if (f instanceof Uint8Array) {
      parts.push(...f);
      continue;
    }
    let v = BigInt.asUintN(f[0] * 8, BigInt(f[1]));
    for (let i = 0; i < f[0]; i++, v >>= 8n) parts.push(Number(v & 0xffn));
  }
  return new Uint8Array(parts);
}
export const u32 = (v: number | bigint): Field => [4, v];
export const u64 = (v: number | bigint): Field => [8, v];
export const zeros = (n: number): Uint8Array => new Uint8Array(n);
