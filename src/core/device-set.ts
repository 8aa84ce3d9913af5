/**
 * A device set: devices that share a key share one set and one lock (the
 * kernel's vfio_device_set). The core creates a set with its first device
 * and forgets it with its last; a driver only chooses the key.
 */
import { SetLock } from './set-lock.js';
import type { VfioDevice } from './device.js';

export class DeviceSet {
  /** Serialises every op of every device of this set. */
  readonly lock = new SetLock();
  /** Registered devices of the set (including ones being unregistered). */
  readonly devices = new Set<VfioDevice>();

  constructor(readonly key: unknown) {}
}
