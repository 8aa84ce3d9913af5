/**
 * A supported type of a parent (`mdev_supported_types/<id>`): its
 * attributes and the bus's instance accounting. A type counts the instances
 * it holds — being created, live, or being removed until released — and,
 * unless its driver computes availability from a shared pool, answers
 * available_instances as maxInstances minus that count.
 */
import { VfioError } from '../base/errors.js';
import type { MdevTypeSpec } from './mdev-driver.js';
import type { MdevParent } from './mdev-parent.js';

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export class MdevType {
  /** `<driver>-<name>`, e.g. `mtty-1`: the directory name under mdev_supported_types. */
  readonly id: string;
  /** The `name` attribute. */
  readonly name: string;
  /** The `description` attribute, when the driver gave one. */
  readonly description: string | undefined;
  /** The `device_api` attribute, e.g. `vfio-pci`. */
  readonly deviceApi: string;
  /** The bus's limit; undefined when the driver computes availability. */
  readonly maxInstances: number | undefined;
  private held = 0;

  /** @internal built by MdevParent from its driver's declaration */
  constructor(
    readonly parent: MdevParent,
    spec: MdevTypeSpec,
  ) {
    const driver = parent.driver;
    if (typeof spec.name !== 'string' || !NAME_RE.test(spec.name)) {
      throw new VfioError('EINVAL', `type name ${JSON.stringify(spec.name)} must be letters, digits, '_', '.' or '-'`);
    }
    this.id = `${driver.name}-${spec.name}`;
    this.name = spec.prettyName ?? spec.name;
    this.description = spec.description;
    this.deviceApi = spec.deviceApi ?? driver.deviceApi ?? 'vfio-pci';
    if (driver.availableInstances) {
      this.maxInstances = undefined;
    } else {
      const max = spec.maxInstances;
      if (max === undefined || !Number.isSafeInteger(max) || max < 0) {
        throw new VfioError('EINVAL', `type ${this.id}: maxInstances must be a non-negative integer (or the driver must compute availableInstances)`);
      }
      this.maxInstances = max;
    }
  }

  /** How many more instances could be created now (the `available_instances` attribute). */
  get availableInstances(): number {
    const driver = this.parent.driver;
    if (driver.availableInstances) {
      const n = driver.availableInstances(this);
      return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
    }
    return this.maxInstances! - this.held;
  }

  /** Instances of this type the bus holds: being created, live, or being removed. */
  get instances(): number {
    return this.held;
  }

  /**
   * @internal MdevBus.create: takes one instance before probing, so
   * concurrent creates cannot overshoot. EUSERS when none is left of a type
   * the bus counts. A pool-based driver refuses in its own probe, with its
   * own errno (mbochs: ENOSPC when video memory runs out), as the kernel's
   * mdev core leaves drivers with get_available to do.
   */
  reserve(): void {
    if (!this.parent.driver.availableInstances && this.availableInstances <= 0) {
      throw new VfioError('EUSERS', `type ${this.id} has no instance left`);
    }
    this.held++;
  }

  /** @internal gives back what reserve() took: on a failed create, or once a removed device is released. */
  unreserve(): void {
    if (this.held <= 0) throw new Error(`type ${this.id}: instance count underflow`);
    this.held--;
  }
}
