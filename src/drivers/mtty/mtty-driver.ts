/**
 * mtty on the mdev bus: types mtty-1 ("Single port serial") and mtty-2
 * ("Dual port serial") carve their cards out of one pool of ports (24 by
 * default, as the kernel sample has), so the available_instances of both
 * types follow what is left of it. A card takes its ports when probed and
 * gives them back when released, after its last client is gone.
 */

import { VfioError } from '../../base/errors.js';
import type { MdevDriver, MdevProbeInfo, MdevType, MdevTypeSpec } from '../../mdev/index.js';
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
  /** Size of the pool. */
  readonly poolPorts: number;
  #free: number;

  constructor(options: MttyDriverOptions = {}) {
    const ports = options.ports ?? MTTY_POOL_PORTS;
    if (!Number.isSafeInteger(ports) || ports < 0) throw new VfioError('EINVAL', `an mtty pool needs a whole number of ports, not ${ports}`);
    this.poolPorts = ports;
    this.#free = ports;
  }

  /** Ports no card holds. */
  get freePorts(): number {
    return this.#free;
  }

  availableInstances(type: MdevType): number {
    const ports = PORTS_BY_TYPE[this.#typeName(type)];
    return ports ? Math.floor(this.#free / ports) : 0;
  }

  /** Takes the card's ports at once, before returning: the bus relies on it. */
  probe(info: MdevProbeInfo): MttyDevice {
    const ports = this.#portsOf(info.type);
    const unknown = Object.keys(info.attrs);
    if (unknown.length > 0) throw new VfioError('EINVAL', `mtty takes no attributes (got ${unknown.join(', ')})`);
    if (this.#free < ports) throw new VfioError('EUSERS', `${info.type.id} needs ${ports} ports; ${this.#free} are left`);
    this.#free -= ports;
    try {
      return new MttyDevice({ name: info.uuid, core: info.core, ports, onRelease: () => this.#giveBack(ports) });
    } catch (err) {
      this.#giveBack(ports);
      throw err;
    }
  }

  #giveBack(ports: number): void {
    this.#free += ports;
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
