/**
 * The core's bookkeeping for one device: what vfio_main.c keeps in struct
 * vfio_device and no driver touches. It hangs off the device under the
 * RECORD symbol, which core/ files share through this leaf module (it
 * imports no value, so no circle) and the package does not export.
 */
import type { DeviceFile } from './device-file.js';
import type { DeviceMigration } from './device-migration.js';
import type { DeviceSet } from './device-set.js';
import type { VfioGroup } from './group.js';

export type DeviceState = 'initialized' | 'registered' | 'unregistering' | 'released';

/** Key of a device's record: drivers have no business there. */
export const RECORD = Symbol('uvfio.device-record');

export interface DeviceRecord {
  state: DeviceState;
  set: DeviceSet | null;
  group: VfioGroup | null;
  /** 1 for the registration itself + 1 per open file (vfio_device_try_get_registration) */
  refs: number;
  /** Files past open_device: the first calls open_device, the last close_device. */
  openCount: number;
  /** Every file not yet closed. */
  files: Set<DeviceFile>;
  /** Which path opened the device: the two are mutually exclusive (EBUSY). */
  openPath: 'cdev' | 'group' | null;
  /** Resolved when refs reach 0. */
  drained: () => void;
  unregistering: Promise<void> | null;
  /** Migration v2 state, made on first use (device-migration.ts). */
  migration: DeviceMigration | null;
  /** A daemon takeover is saving or loading the device (VfioDevice.handover). */
  handover: boolean;
}

/** The record of a device just constructed (initialized, not registered). */
export function newDeviceRecord(): DeviceRecord {
  return {
    state: 'initialized',
    set: null,
    group: null,
    refs: 0,
    openCount: 0,
    files: new Set(),
    openPath: null,
    drained: () => {},
    unregistering: null,
    migration: null,
    handover: false,
  };
}
