/**
 * mtty on the mdev bus: types mtty-1 ("Single port serial") and mtty-2
 * ("Dual port serial") carve their cards out of one pool of ports (24 by
 * default, as the kernel sample has), so the available_instances of both
 * types follow what is left of it. A card takes its ports when probed and
 * gives them back when released, after its last client is gone.
 */

import { VfioError } from '../../base/errors.js';
import { SharedPool, type MdevDriver, type MdevProbeInfo, type MdevType, type MdevTypeSpec } from '../../mdev/index.js';
import { MttyDevice, type MttyPortCount } from './mtty-device.js';

/** Ports in the pool of a parent unless told otherwise (the kernel's MAX_MTTYS). */
export const MTTY_POOL_PORTS = 24;

/** Ports per card, by type name (the part of the type id after `mtty-`). */
const PORTS_BY_TYPE: Readonly<Record<string, MttyPortCount>> = { '1': 1, '2': 2 };

const TYPES: readonly MdevTypeSpec[] = [
  { name: '1', prettyName: 'Single port serial' },
  { name: '2', prettyName: 'Dual port serial' },
];

export interface MttyDriverOptions {
  /** Size of the shared pool; default 24. */
  ports?: number;
}

/** One driver per parent: the pool belongs to the parent it serves. */
export class MttyDriver implements MdevDriver {
  readonly name = 'mtty';
  readonly deviceApi = 'vfio-pci';
  readonly types = TYPES;
  /** The parent's ports. */
  readonly pool: SharedPool;

  constructor(options: MttyDriverOptions = {}) {
    this.pool = new SharedPool({ name: 'mtty ports', size: options.ports ?? MTTY_POOL_PORTS });
  }

  availableInstances(type: MdevType): number {
    const ports = PORTS_BY_TYPE[this.#typeName(type)];
    return ports ? this.pool.available(ports) : 0;
  }

  /** Takes the card's ports at once, before returning: the bus relies on it. */
  probe(info: MdevProbeInfo): MttyDevice {
    const ports = this.#portsOf(info.type);
    const unknown = Object.keys(info.attrs);
    if (unknown.length > 0) throw new VfioError('EINVAL', `mtty takes no attributes (got ${unknown.join(', ')})`);
    const share = this.pool.take(ports, info.type.id);
    try {
      return new MttyDevice({ name: info.uuid, core: info.core, ports, onRelease: () => share.give() });
    } catch (err) {
      share.give();
      throw err;
    }
  }

  #typeName(type: MdevType): string {
    return type.id.slice(this.name.length + 1);
  }

  #portsOf(type: MdevType): MttyPortCount {
    const ports = PORTS_BY_TYPE[this.#typeName(type)];
    if (ports === undefined) throw new VfioError('EINVAL', `mtty has no type ${type.id}`);
    return ports;
  }
}
