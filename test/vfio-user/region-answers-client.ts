/**
 * The client process of region-answers.test.ts: the server's native layer
 * answers a request only while it lingers for it, which a client in the
 * server's own process can never make it do. It connects to the socket
 * named on its command line, reads what it needs, writes {"ready":…} and
 * waits for a line on stdin; then runs its workload ("mixed" or "odd",
 * seeded), writes the result as one JSON line, and closes once stdin ends.
 * Run without arguments (say, by a test runner globbing the folder) it
 * does nothing.
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Command, HeaderFlags, VfioUserClient, type Frame } from '../../src/vfio-user/index.js';
import { Prng } from '../support/prng.js';

/** Region 0: plain memory; 1: served by regionRead/regionWrite only; 2: plain to read, a side effect to write. */
export const PLAIN = 0;
export const OPS = 1;
export const ROM = 2;

/** What the "mixed" workload reports. */
export interface MixedResult {
  /** REGION_READs and REGION_WRITEs sent after "go" */
  accesses: number;
  /** of them, the ones answered (all but posted writes) */
  replies: number;
  /** bytes of those requests, and of their replies */
  bytesIn: number;
  bytesOut: number;
  /** reads whose data was not what the client had written there */
  mismatches: number;
  firstMismatch: string | null;
  /** sha256 of region 0 as the client believes it is at the end */
  sha256: string;
  ms: number;
}

/** One reply of the "odd" workload, or "posted" for a request that has none. */
export type OddReply = { flags: number; errorNo: number; size: number; body: string } | 'posted';

/** What the "odd" workload reports: each request's name and reply, in order, and mismatches of the checked reads. */
export interface OddResult {
  replies: Array<[string, OddReply]>;
  mismatches: number;
  firstMismatch: string | null;
}

const u8 = (n: number, f: (i: number) => number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);

/** A REGION_READ / REGION_WRITE body: offset u64, region u32, count u32, then data. */
export function accessBody(offset: number, region: number, count: number, data?: Uint8Array, extra = 0): Uint8Array {
  const b = new Uint8Array(16 + (data?.length ?? 0) + extra);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(offset), true);
  v.setUint32(8, region, true);
  v.setUint32(12, count, true);
  if (data !== undefined) b.set(data, 16);
  return b;
}

function hex(b: Uint8Array): string {
  return b.length <= 64 ? Buffer.from(b).toString('hex') : `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

class Checker {
  mismatches = 0;
  firstMismatch: string | null = null;
  check(what: string, got: Uint8Array, want: Uint8Array): void {
    if (Buffer.from(got).equals(Buffer.from(want))) return;
    this.mismatches++;
    this.firstMismatch ??= `${what}: got ${hex(got)}, want ${hex(want)}`;
  }
}

/** Sequential writes of 1 byte to 32 KiB, each read back, with posted writes and pipelined batches mixed in. */
async function mixed(client: VfioUserClient, shadow: Uint8Array, seed: number, pairs: number): Promise<MixedResult> {
  const rng = new Prng(seed);
  const c = new Checker();
  const r: MixedResult = { accesses: 0, replies: 0, bytesIn: 0, bytesOut: 0, mismatches: 0, firstMismatch: null, sha256: '', ms: 0 };
  const size = (i: number): number => (i % 200 === 0 ? 32 * 1024 : i % 50 === 0 ? 4096 : i % 97 === 0 ? 1 + rng.int(300) : rng.pick([1, 2, 4, 8]));
  const where = (n: number): number => (rng.chance(0.5) ? rng.int((shadow.length - n) / n + 1) * n : rng.int(shadow.length - n + 1));
  const write = (offset: number, data: Uint8Array, posted: boolean): Promise<void> => {
    shadow.set(data, offset);
    r.accesses++;
    r.bytesIn += 32 + data.length;
    if (!posted) {
      r.replies++;
      r.bytesOut += 32;
    }
    return client.regionWrite(PLAIN, offset, data, { posted });
  };
  const read = (offset: number, n: number): Promise<void> => {
    const want = shadow.slice(offset, offset + n);
    r.accesses++;
    r.replies++;
    r.bytesIn += 32;
    r.bytesOut += 32 + n;
    return client.regionRead(PLAIN, offset, n).then((got) => c.check(`read [${offset}, +${n})`, got, want));
  };
  const t = Date.now();
  for (let i = 0; i < pairs; i++) {
    const n = size(i);
    const offset = where(n);
    await write(
      offset,
      u8(n, () => rng.int(256)),
      rng.chance(0.25),
    );
    await read(offset, n);
    if (i % 10 === 5) {
      const m = i % 250 === 5 ? 64 * 1024 : rng.pick([4, 8, 64]);
      await read(where(m), m);
    }
    if (i % 100 === 50) {
      // Pipelined: several requests in one read of the server's, answered in order.
      const batch: Promise<void>[] = [];
      for (let j = 0; j < 8; j++) {
        const k = rng.pick([1, 4, 8, 256]);
        batch.push(
          rng.chance(0.5)
            ? write(
                where(k),
                u8(k, () => rng.int(256)),
                rng.chance(0.3),
              )
            : read(where(k), k),
        );
      }
      await Promise.all(batch);
    }
    if (i % 400 === 200) {
      // 64 KiB reads pipelined with small writes: more replies than the
      // socket takes at once, so some go out in part, their rest queued.
      const batch: Promise<void>[] = [];
      for (let j = 0; j < 30; j++) {
        if (j % 3 === 0) batch.push(read(where(64 * 1024), 64 * 1024));
        else if (j % 3 === 1)
          batch.push(
            write(
              where(8),
              u8(8, () => rng.int(256)),
              j % 2 === 0,
            ),
          );
        else batch.push(read(where(4), 4));
      }
      await Promise.all(batch);
    }
  }
  r.ms = Date.now() - t;
  r.mismatches = c.mismatches;
  r.firstMismatch = c.firstMismatch;
  r.sha256 = createHash('sha256').update(shadow).digest('hex');
  return r;
}

/**
 * Accesses the native layer must leave to the session, each between
 * answerable ones, some pipelined with them: every reply as it came.
 */
async function odd(client: VfioUserClient, shadow: Uint8Array, rom: Uint8Array, regionSize: number, xfer?: number): Promise<OddResult> {
  const c = new Checker();
  const replies: Array<[string, OddReply]> = [];
  const keep = (name: string, f: Frame): void => void replies.push([name, { flags: f.flags, errorNo: f.errorNo, size: f.size, body: hex(f.body) }]);
  const raw = (name: string, cmd: number, body: Uint8Array, flags = 0): Promise<void> =>
    client.request(cmd, body, { flags }).then((f) => keep(name, f));
  const read = (name: string, region: number, offset: number, count: number, flags = 0): Promise<void> =>
    raw(name, Command.REGION_READ, accessBody(offset, region, count), flags);
  const write = (name: string, region: number, offset: number, data: Uint8Array, flags = 0): Promise<void> =>
    raw(name, Command.REGION_WRITE, accessBody(offset, region, data.length, data), flags);
  // An answerable write and its read-back, checked against what was written.
  let serial = 0;
  const plain = async (): Promise<void> => {
    serial++;
    const offset = (serial * 4099) % (shadow.length - 8);
    const data = u8(8, (i) => serial * 31 + i);
    shadow.set(data, offset);
    await client.regionWrite(PLAIN, offset, data);
    c.check(`plain read ${serial}`, await client.regionRead(PLAIN, offset, 8), data);
  };
  const steps: Array<() => Promise<void>> = [
    () => read('read past the end', PLAIN, regionSize - 4, 8),
    () => read('read starting past the end', PLAIN, regionSize, 4),
    () => read('read at 2^63', PLAIN, 2 ** 63, 4),
    () => read('read of 0 bytes', PLAIN, 0, 0),
    () => read('read of 64 KiB + 1', PLAIN, 4096, 64 * 1024 + 1),
    () => read('read of region 1 (not plain)', OPS, 8, 16),
    () => read('read of region 7 (none)', 7, 0, 4),
    () => read('read of region 20 (beyond the table)', 20, 0, 4),
    () => raw('read with 4 bytes too many', Command.REGION_READ, accessBody(0, PLAIN, 4, undefined, 4)),
    () => raw('read with 4 bytes too few', Command.REGION_READ, accessBody(0, PLAIN, 4).subarray(0, 12)),
    () => read('read with an unknown flag', PLAIN, 64, 4, 0x40),
    () => read('read with the ERROR flag', PLAIN, 64, 4, HeaderFlags.ERROR),
    () =>
      write(
        'write past the end',
        PLAIN,
        regionSize - 2,
        u8(4, (i) => i),
      ),
    () => write('write of 0 bytes', PLAIN, 128, new Uint8Array(0)),
    () =>
      raw(
        'write whose count is 4 more than its data',
        Command.REGION_WRITE,
        accessBody(
          0,
          PLAIN,
          8,
          u8(4, () => 0xee),
        ),
      ),
    () =>
      write(
        'write of region 1 (not plain)',
        OPS,
        8,
        u8(16, (i) => 0xa0 + i),
      ),
    () => read('read of region 1 again', OPS, 0, 32),
    () =>
      write(
        'write of region 2 (plain to read only)',
        ROM,
        16,
        u8(8, (i) => 0x10 + i),
      ),
    () => read('read of region 2 (plain)', ROM, 0, 32),
    async () => {
      // Posted and refused: no reply, and what follows is served as ever.
      await client.regionWrite(
        PLAIN,
        regionSize - 1,
        u8(2, () => 0xff),
        { posted: true },
      );
      replies.push(['posted write past the end', 'posted']);
    },
    () =>
      raw(
        'DEVICE_GET_INFO',
        Command.DEVICE_GET_INFO,
        u8(16, (i) => (i === 0 ? 16 : 0)),
      ),
  ];
  // A server whose max_data_xfer_size is below 64 KiB: the native layer's bound too.
  if (xfer !== undefined) {
    steps.push(
      () => read('read of max_data_xfer_size', PLAIN, 8, xfer),
      () => read('read of max_data_xfer_size + 1', PLAIN, 8, xfer + 1),
    );
  }
  for (const step of steps) {
    await plain();
    await step();
    await plain();
  }
  // The same, pipelined between answerable accesses: each batch reaches the
  // server's socket at once, so answered and delivered ones share reads.
  for (const step of steps) {
    serial++;
    const offset = (serial * 577) % (shadow.length - 4);
    const data = u8(4, (i) => serial + i);
    shadow.set(data, offset);
    const want = shadow.slice(0, 64);
    await Promise.all([
      client.regionWrite(PLAIN, offset, data, { posted: true }),
      client.regionRead(PLAIN, 0, 64).then((got) => c.check(`batch ${serial} before`, got, want)),
      step(),
      client.regionRead(PLAIN, offset, 4).then((got) => c.check(`batch ${serial} after`, got, data)),
    ]);
  }
  // Region 2 as it is now: its writes went through the device (inverted), never straight into memory.
  c.check(
    'region 2 at the end',
    await client.regionRead(ROM, 0, rom.length),
    rom.map((b, i) => (i >= 16 && i < 24 ? ~(0x10 + i - 16) & 0xff : b)),
  );
  return { replies, mismatches: c.mismatches, firstMismatch: c.firstMismatch };
}

/** Reads `count` bytes of region `index` in reads of at most 64 KiB. */
async function readAll(client: VfioUserClient, index: number, count: number, chunk: number): Promise<Uint8Array> {
  const out = new Uint8Array(count);
  for (let at = 0; at < count; at += chunk) out.set(await client.regionRead(index, at, Math.min(chunk, count - at)), at);
  return out;
}

const [path, mode, arg] = process.argv.slice(2);
if (path !== undefined && mode !== undefined) {
  const client = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const plainSize = (await client.getRegionInfo(PLAIN)).size;
  const romSize = (await client.getRegionInfo(ROM)).size;
  const { seed, pairs, xfer } = JSON.parse(arg ?? '{}') as { seed?: number; pairs?: number; xfer?: number };
  const shadow = await readAll(client, PLAIN, plainSize, Math.min(xfer ?? 64 * 1024, 64 * 1024));
  const rom = await readAll(client, ROM, romSize, Math.min(xfer ?? 64 * 1024, 64 * 1024));
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  await lines.next(); // "go"
  const result = mode === 'mixed' ? await mixed(client, shadow, seed ?? 1, pairs ?? 2000) : await odd(client, shadow, rom, plainSize, xfer);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await lines.next(); // stdin ends: the test has read the server's counters
  client.close();
  process.exit(0);
}
