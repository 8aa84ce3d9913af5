/**
 * Wraps any mdev driver for the stress tests: parks at scheduler points
 * right after the real probe (which has taken its pool share by then) and
 * before the real remove, refuses removals at random, and checks what the
 * bus promises every driver: each probed device released exactly once,
 * never while open, and the pool whole at every moment — free ports plus
 * the ports of the devices not yet released make the pool.
 */
import type { VfioDevice } from '../../src/core/index.js';
import { VfioError } from '../../src/core/index.js';
import type { MdevDevice, MdevDriver, MdevProbeInfo, MdevRemoveOptions, MdevType } from '../../src/mdev/index.js';

/** How to see a driver's shared pool. */
export interface PoolProbe {
  size: number;
  free(): number;
  portsOf(device: VfioDevice): number;
}

export interface InstrumentOptions {
  point: (label: string) => Promise<void>;
  /** refuse this (unforced) removal with EBUSY */
  refuse: () => boolean;
  pool: PoolProbe | null;
}

export class InstrumentedDriver implements MdevDriver {
  readonly name: string;
  readonly deviceApi: string | undefined;
  readonly types;
  readonly availableInstances?: (type: MdevType) => number;
  /** every device a probe returned */
  readonly probed: VfioDevice[] = [];
  readonly releases = new Map<VfioDevice, number>();
  /** probed and not yet released */
  readonly live = new Set<VfioDevice>();
  readonly violations: string[] = [];

  constructor(
    readonly inner: MdevDriver,
    private readonly options: InstrumentOptions,
  ) {
    this.name = inner.name;
    this.deviceApi = inner.deviceApi;
    this.types = inner.types;
    if (inner.availableInstances) this.availableInstances = (type) => inner.availableInstances!(type);
  }

  async probe(info: MdevProbeInfo): Promise<VfioDevice> {
    const device = await this.inner.probe(info);
    this.track(device);
    await this.options.point(`probe ${info.uuid}`);
    return device;
  }

  async remove(mdev: MdevDevice, options: MdevRemoveOptions): Promise<void> {
    await this.options.point(`remove ${mdev.uuid}`);
    await this.inner.remove?.(mdev, options);
    if (!options.forced && this.options.refuse()) throw new VfioError('EBUSY', `${mdev.uuid} is busy`);
  }

  /** Problems with the pool right now; empty when whole. */
  poolProblems(): string[] {
    const pool = this.options.pool;
    if (!pool) return [];
    let held = 0;
    for (const d of this.live) held += pool.portsOf(d);
    return pool.free() + held === pool.size ? [] : [`pool: ${pool.free()} free + ${held} held != ${pool.size}`];
  }

  private track(device: VfioDevice): void {
    this.probed.push(device);
    this.live.add(device);
    this.releases.set(device, 0);
    const release = device.release.bind(device);
    device.release = () => {
      const n = this.releases.get(device)! + 1;
      this.releases.set(device, n);
      if (n > 1) this.violations.push(`${device.name}: released ${n} times`);
      if (device.openCount > 0) this.violations.push(`${device.name}: released while open`);
      this.live.delete(device);
      release();
    };
  }
}
