/**
 * A device's regions and IRQ indexes as one session sees them, read once
 * when the session binds: decoders check every index and access range
 * against it, so that an access to a region or IRQ that does not exist is
 * refused at the door (EINVAL, as libvfio-user does) and the hot path needs
 * no call into the device to know a region's size.
 */
import type { DeviceFile } from '../core/device-file.js';
import { DeviceFlags } from '../base/uapi.js';
import type { DeviceShape } from './context.js';

/** VFIO_USER_DEVICE_GET_INFO's answer and every region's and IRQ index's info. */
export class SessionDeviceShape implements DeviceShape {
  constructor(
    /** device flags, CAPS cleared: a vfio-user device info has no capability chain */
    readonly flags: number,
    private readonly regions: readonly { size: number; flags: number }[],
    private readonly irqs: readonly { count: number; flags: number }[],
  ) {}

  get numRegions(): number {
    return this.regions.length;
  }
  get numIrqs(): number {
    return this.irqs.length;
  }
  regionSize(index: number): number {
    return this.regions[index]?.size ?? 0;
  }
  /** RegionFlags of region `index` (0 for one the device does not implement) */
  regionFlags(index: number): number {
    return this.regions[index]?.flags ?? 0;
  }
  irqInfo(index: number): { count: number; flags: number } {
    return this.irqs[index] ?? { count: 0, flags: 0 };
  }

  /**
   * Asks a bound file for everything. A region or IRQ index whose info the
   * device refuses is recorded as absent (size or count 0).
   */
  static async load(file: DeviceFile): Promise<SessionDeviceShape> {
    const info = await file.getInfo();
    const regions = await each(
      info.numRegions,
      async (i) => {
        const r = await file.getRegionInfo(i);
        return { size: r.size, flags: r.flags };
      },
      { size: 0, flags: 0 },
    );
    const irqs = await each(
      info.numIrqs,
      async (i) => {
        const q = await file.getIrqInfo(i);
        return { count: q.count, flags: q.flags };
      },
      { count: 0, flags: 0 },
    );
    return new SessionDeviceShape(info.flags & ~DeviceFlags.CAPS, regions, irqs);
  }
}

/** fetch(0..n-1) in order, `absent` for each index the device refuses. */
async function each<T>(n: number, fetch: (i: number) => Promise<T>, absent: T): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fetch(i).catch(() => absent));
  return out;
}
