/**
 * The benchmark's device: one region (region 0) of 1 MiB whose reads are a
 * memcpy and whose writes are stored, and nothing else. What a trivial
 * register file costs on top of the transport is the point: the device
 * allocates nothing per access either.
 */
import { RegionFlags, VfioDevice, type DeviceInfo, type DeviceOptions, type RegionInfo } from '../src/core/index.js';

export const BENCH_REGION_SIZE = 1024 * 1024;

export class BenchDevice extends VfioDevice {
  readonly mem = new Uint8Array(BENCH_REGION_SIZE);

  /** `fill` writes a pattern over the region; unfilled, its pages stay untouched (not resident). */
  constructor(options: DeviceOptions & { fill?: boolean }) {
    super(options);
    if (options.fill ?? true) for (let i = 0; i < BENCH_REGION_SIZE; i++) this.mem[i] = (i * 7 + 1) & 0xff;
  }

  override getInfo(): DeviceInfo {
    return { flags: 0, numRegions: 1, numIrqs: 0 };
  }

  override getRegionInfo(index: number): RegionInfo {
    if (index !== 0) return super.getRegionInfo(index);
    return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: BENCH_REGION_SIZE };
  }

  override regionRead(_index: number, offset: number, dest: Uint8Array): void {
    const n = dest.length;
    // Register-sized reads byte by byte: a subarray would be an allocation.
    if (n <= 16) for (let i = 0; i < n; i++) dest[i] = this.mem[offset + i]!;
    else dest.set(this.mem.subarray(offset, offset + n));
  }

  override regionWrite(_index: number, offset: number, src: Uint8Array): void {
    this.mem.set(src, offset);
  }

  /** Region 0 is plain memory: large reads leave from it, large writes land in it. */
  override regionMemory(index: number, offset: number, count: number): Uint8Array | null {
    return index === 0 && offset + count <= BENCH_REGION_SIZE ? this.mem.subarray(offset, offset + count) : null;
  }
}
