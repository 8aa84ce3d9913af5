/**
 * A mediated device the bus created: its UUID, type and attributes, and the
 * driver's core device that serves it. The bus lists it while `active`;
 * `removing` takes it off the list (it comes back if the driver refuses),
 * `removed` is final: the core device has been released.
 */
import type { VfioDevice } from '../core/device.js';
import type { MdevAttrs } from './mdev-driver.js';
import type { MdevParent } from './mdev-parent.js';
import type { MdevType } from './mdev-type.js';

export type MdevDeviceState = 'active' | 'removing' | 'removed';

export class MdevDevice {
  private current: MdevDeviceState = 'active';

  /** @internal built by MdevBus once the device is registered and served */
  constructor(
    readonly uuid: string,
    readonly type: MdevType,
    readonly attrs: MdevAttrs,
    readonly device: VfioDevice,
  ) {}

  get parent(): MdevParent {
    return this.type.parent;
  }

  get state(): MdevDeviceState {
    return this.current;
  }

  /** @internal only the bus moves a device between states */
  setState(state: MdevDeviceState): void {
    this.current = state;
  }
}
