/**
 * mbochs on the mdev bus: types mbochs-small (4 MiB, modes up to 800x600),
 * mbochs-medium (16 MiB, up to 1920x1440) and mbochs-large (64 MiB, no
 * limit) carve their video memory out of one pool per parent (256 MiB by
 * default), so the available_instances of every type follow what is left.
 * A device takes its memory when probed (ENOSPC when the pool cannot give
 * it) and gives it back when released, after its last client is gone.
 */
import { VfioError } from '../../base/errors.js';
import { SharedPool, type MdevDriver, type MdevProbeInfo, type MdevType, type MdevTypeSpec } from '../../mdev/index.js';
import { MbochsDevice } from './mbochs-device.js';

const MIB = 1024 * 1024;
/** Video memory of a parent unless told otherwise (the kernel sample's `mem`). */
const DEFAULT_POOL_BYTES = 256 * MIB;

/** What each type gets, by type name (the part of the id after `mbochs-`). */
const MBOCHS_TYPES: Readonly<Record<string, { memoryBytes: number; maxWidth: number; maxHeight: number }>> = {
  small: { memoryBytes: 4 * MIB, maxWidth: 800, maxHeight: 600 },
  medium: { memoryBytes: 16 * MIB, maxWidth: 1920, maxHeight: 1440 },
  large: { memoryBytes: 64 * MIB, maxWidth: 0, maxHeight: 0 },
};

const TYPES: readonly MdevTypeSpec[] = Object.entries(MBOCHS_TYPES).map(([name, t]) => ({
  name,
  prettyName: `mbochs-${name}`,
  description: `virtual display, ${t.memoryBytes / MIB} MB video memory`,
}));

export interface MbochsDriverOptions {
  /** Size of the shared video memory pool in bytes; default 256 MiB. */
  poolBytes?: number;
}

/** One driver per parent: the pool belongs to the parent it serves. */
export class MbochsDriver implements MdevDriver {
  readonly name = 'mbochs';
  readonly deviceApi = 'vfio-pci';
  readonly types = TYPES;
  /** The parent's video memory, in bytes. */
  readonly pool: SharedPool;

  constructor(options: MbochsDriverOptions = {}) {
    const size = options.poolBytes ?? DEFAULT_POOL_BYTES;
    this.pool = new SharedPool({ name: 'mbochs video memory', size, unit: (b) => `${b / MIB} MiB`, exhausted: 'ENOSPC' });
  }

  availableInstances(type: MdevType): number {
    const spec = MBOCHS_TYPES[this.#typeName(type)];
    return spec ? this.pool.available(spec.memoryBytes) : 0;
  }

  /** Takes the device's memory at once, before returning: the bus relies on it. */
  probe(info: MdevProbeInfo): MbochsDevice {
    const spec = MBOCHS_TYPES[this.#typeName(info.type)];
    if (!spec) throw new VfioError('EINVAL', `mbochs has no type ${info.type.id}`);
    const unknown = Object.keys(info.attrs);
    if (unknown.length > 0) throw new VfioError('EINVAL', `mbochs takes no attributes (got ${unknown.join(', ')})`);
    const share = this.pool.take(spec.memoryBytes, info.type.id);
    try {
      const handedOver = info.barMemory === undefined ? {} : { barMemory: info.barMemory };
      return new MbochsDevice({ name: info.uuid, core: info.core, ...spec, ...handedOver, onRelease: () => share.give() });
    } catch (err) {
      share.give();
      throw err;
    }
  }

  #typeName(type: MdevType): string {
    return type.id.slice(this.name.length + 1);
  }
}
