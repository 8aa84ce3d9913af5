/**
 * mdpy on the mdev bus: types mdpy-vga (640x480), mdpy-xga (1024x768) and
 * mdpy-hd (1920x1080). As in the kernel sample, a parent serves a fixed
 * number of devices (its `count`, 4 by default) whatever their types, so
 * every type's available_instances is what is left of that count.
 */
import { VfioError } from '../../base/errors.js';
import { SharedPool, type MdevDriver, type MdevProbeInfo, type MdevType, type MdevTypeSpec } from '../../mdev/index.js';
import { MdpyDevice } from './mdpy-device.js';

/** Devices a parent serves unless told otherwise (the kernel's `count`). */
const MDPY_MAX_DEVICES = 4;

/** The mode of each type, by type name (the part of the id after `mdpy-`). */
const MDPY_MODES: Readonly<Record<string, { width: number; height: number }>> = {
  vga: { width: 640, height: 480 },
  xga: { width: 1024, height: 768 },
  hd: { width: 1920, height: 1080 },
};

const TYPES: readonly MdevTypeSpec[] = Object.entries(MDPY_MODES).map(([name, m]) => ({
  name,
  prettyName: `mdpy-${name}`,
  description: `virtual display, ${m.width}x${m.height} framebuffer`,
}));

export interface MdpyDriverOptions {
  /** Devices the parent serves at once, all types together; default 4. */
  maxDevices?: number;
}

/** One driver per parent: the count belongs to the parent it serves. */
export class MdpyDriver implements MdevDriver {
  readonly name = 'mdpy';
  readonly deviceApi = 'vfio-pci';
  readonly types = TYPES;
  /** The devices the parent serves, one unit each: `used` is those probed and not yet released. */
  readonly pool: SharedPool;

  constructor(options: MdpyDriverOptions = {}) {
    this.pool = new SharedPool({ name: 'mdpy devices', size: options.maxDevices ?? MDPY_MAX_DEVICES });
  }

  availableInstances(type: MdevType): number {
    void type;
    return this.pool.available(1);
  }

  /** Counts the device at once, before returning: the bus relies on it. */
  probe(info: MdevProbeInfo): MdpyDevice {
    const mode = MDPY_MODES[info.type.id.slice(this.name.length + 1)];
    if (!mode) throw new VfioError('EINVAL', `mdpy has no type ${info.type.id}`);
    const unknown = Object.keys(info.attrs);
    if (unknown.length > 0) throw new VfioError('EINVAL', `mdpy takes no attributes (got ${unknown.join(', ')})`);
    const share = this.pool.take(1, info.type.id);
    try {
      const handedOver = info.barMemory === undefined ? {} : { barMemory: info.barMemory };
      return new MdpyDevice({ name: info.uuid, core: info.core, ...mode, ...handedOver, onRelease: () => share.give() });
    } catch (err) {
      share.give();
      throw err;
    }
  }
}
