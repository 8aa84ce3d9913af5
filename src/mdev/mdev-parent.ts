/**
 * A parent device (the kernel's struct mdev_parent): something a driver can
 * carve mediated devices out of, with the types it supports. Unregistering
 * a parent removes its devices first, refusing no one.
 */
import { VfioError } from '../base/errors.js';
import { MdevType } from './mdev-type.js';
import type { MdevDriver, MdevTypeSpec } from './mdev-driver.js';
import type { MdevBus } from './mdev-bus.js';
import type { MdevDevice } from './mdev-device.js';

export type MdevParentState = 'registered' | 'unregistering' | 'unregistered';

/** Options of MdevBus.registerParent(). */
export interface MdevParentOptions {
  /** Unique on the bus: the directory under class/mdev_bus. Letters, digits, `_`, `.`, `:`, `-`. */
  name: string;
  driver: MdevDriver;
  /** The types of this parent; the driver's `types` when omitted. */
  types?: readonly MdevTypeSpec[];
}

const PARENT_RE = /^[A-Za-z0-9_.:-]+$/;

export class MdevParent {
  readonly name: string;
  readonly driver: MdevDriver;
  /** In declaration order. */
  readonly types: readonly MdevType[];
  private current: MdevParentState = 'registered';
  /** @internal set once by MdevBus.unregisterParent() */
  unregistering: Promise<void> | null = null;

  /** @internal use MdevBus.registerParent() */
  constructor(
    readonly bus: MdevBus,
    options: MdevParentOptions,
  ) {
    if (typeof options.name !== 'string' || !PARENT_RE.test(options.name)) {
      throw new VfioError('EINVAL', `parent name ${JSON.stringify(options.name)} must be letters, digits, '_', '.', ':' or '-'`);
    }
    const driver = options.driver;
    if (!driver || typeof driver.name !== 'string' || !PARENT_RE.test(driver.name) || typeof driver.probe !== 'function') {
      throw new VfioError('EINVAL', `parent ${options.name}: a driver needs a name and a probe function`);
    }
    this.name = options.name;
    this.driver = driver;
    const specs = options.types ?? driver.types;
    if (!Array.isArray(specs) || specs.length === 0) {
      throw new VfioError('EINVAL', `parent ${options.name}: at least one type is needed`);
    }
    // Array.isArray widened the readonly array to any[]; it holds specs.
    const types = (specs as readonly MdevTypeSpec[]).map((spec) => new MdevType(this, spec));
    const ids = new Set(types.map((t) => t.id));
    if (ids.size !== types.length) throw new VfioError('EINVAL', `parent ${options.name}: two types share an id`);
    this.types = types;
  }

  get state(): MdevParentState {
    return this.current;
  }

  /** @internal only the bus moves a parent between states */
  setState(state: MdevParentState): void {
    this.current = state;
  }

  /** One of this parent's types by id (`mtty-1`). */
  type(id: string): MdevType | undefined {
    return this.types.find((t) => t.id === id);
  }

  /** Listed devices of this parent. */
  devices(): MdevDevice[] {
    return this.bus.devices().filter((d) => d.parent === this);
  }

  /** Same as MdevBus.unregisterParent(this). */
  unregister(): Promise<void> {
    return this.bus.unregisterParent(this);
  }
}
