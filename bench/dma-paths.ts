/**
 * The cost of each way the server reaches client memory, through the
 * address space a device uses (IoAddressSpace.readSync/writeSync):
 *
 * - `mapped`: a size-sealed memfd mapped here, copies done natively
 *   (iommufd/fd-backing.ts MappedFdBacking: what QEMU's memfd backend gets)
 * - `pread`: an unsealed memfd reached with pread/pwrite on its fd
 *   (FileBacking: memory the client could shrink)
 * - `arraybuffer`: the same sealed memfd as one ArrayBuffer, copied with
 *   TypedArray.set (how every mapped DMA was reached before)
 *
 * for 1 MiB accesses (MiB/s) and 16-byte ones (a virtio descriptor; ns per
 * access), reads and writes, alternating the paths round by round so they
 * meet the same background load; medians of ROUNDS rounds.
 *
 *   node dist/bench/dma-paths.js            (ROUNDS=5 N1M=2000 N16=200000)
 */
import { performance } from 'node:perf_hooks';
import { fdBacking } from '../src/iommufd/fd-backing.js';
import { IoAddressSpace, MemoryBacking, type DmaBacking } from '../src/iommufd/index.js';
import { close, dup, MappedMemory, memfdCreate, sealSize } from '../src/native/index.js';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const ROUNDS = env('ROUNDS', 5);
const N1M = env('N1M', 2000);
const N16 = env('N16', 200_000);
const SIZE = 64 * 1024 * 1024;
const MiB = 1024 * 1024;

function space(backing: DmaBacking): IoAddressSpace {
  const as = new IoAddressSpace();
  as.map(0, SIZE, backing);
  return as;
}

const sealed = memfdCreate('bench-sealed', SIZE);
sealSize(sealed);
const unsealed = memfdCreate('bench-unsealed', SIZE);
const view = MappedMemory.map(sealed, 0, SIZE);
const paths: Record<string, IoAddressSpace> = {
  mapped: space(fdBacking(dup(sealed), 0, SIZE, true).backing!),
  pread: space(fdBacking(dup(unsealed), 0, SIZE, true).backing!),
  arraybuffer: space(new MemoryBacking(view.bytes)),
};
// Touch every page once, so the figures are copies, not page faults.
for (const as of Object.values(paths)) for (let at = 0; at < SIZE; at += MiB) as.writeSync(at, new Uint8Array(MiB));

/** Seconds for `n` accesses of `buf` spread over the mapping. */
function time(as: IoAddressSpace, op: 'read' | 'write', buf: Uint8Array, n: number): number {
  const span = SIZE / buf.byteLength;
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const at = (i % span) * buf.byteLength;
    if (op === 'read') as.readSync(at, buf);
    else as.writeSync(at, buf);
  }
  return (performance.now() - t) / 1000;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<string, Record<string, number[]>> = {};
const big = new Uint8Array(MiB);
const small = new Uint8Array(16);
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, as] of Object.entries(paths)) {
    const r = (results[name] ??= {});
    for (const op of ['read', 'write'] as const) {
      (r[`${op}_1MiB_MiBps`] ??= []).push(N1M / time(as, op, big, N1M));
      (r[`${op}_16B_ns`] ??= []).push((time(as, op, small, N16) * 1e9) / N16);
    }
  }
}
for (const [name, r] of Object.entries(results)) {
  const fields = Object.entries(r).map(([k, xs]) => `${k}=${median(xs).toFixed(k.endsWith('ns') ? 0 : 0)}`);
  console.log(`path=${name} ${fields.join(' ')}`);
}
for (const as of Object.values(paths)) as.destroy();
view.close();
close(sealed);
close(unsealed);
