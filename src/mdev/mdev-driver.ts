/**
 * What a driver gives the mdev bus (the kernel's struct mdev_driver plus
 * the types a parent declares). The bus owns the lifecycle: it keeps the
 * device list and the instance counts, registers the driver's device with
 * the core and unregisters it; the driver only builds, vets and frees.
 */
import type { VfioCore } from '../core/vfio-core.js';
import type { VfioDevice } from '../core/device.js';
import type { MappedMemory } from '../native/memory.js';
import type { MdevType } from './mdev-type.js';
import type { MdevParent } from './mdev-parent.js';
import type { MdevDevice } from './mdev-device.js';

/** Vendor-specific creation attributes (mdevctl's `attrs`), passed through to probe. */
export type MdevAttrs = Readonly<Record<string, string>>;

/** One supported type, as a driver declares it. */
export interface MdevTypeSpec {
  /** The type id is `<driver name>-<name>` (e.g. mtty's `1` gives `mtty-1`). Letters, digits, `_`, `.`, `-`. */
  readonly name: string;
  /** The human-readable `name` attribute (the kernel's pretty_name); `name` when omitted. */
  readonly prettyName?: string;
  /** The optional `description` attribute; the file is absent when omitted. */
  readonly description?: string;
  /** The `device_api` attribute; the driver's deviceApi when omitted. */
  readonly deviceApi?: string;
  /**
   * How many instances of this type may exist at once, counted by the bus.
   * Required unless the driver computes availability itself (availableInstances).
   */
  readonly maxInstances?: number;
}

/** What probe() is told about the device to build. */
export interface MdevProbeInfo {
  /** Canonical UUID: it must become the device's name. */
  readonly uuid: string;
  readonly type: MdevType;
  readonly parent: MdevParent;
  readonly attrs: MdevAttrs;
  /** The core the device must be constructed with. */
  readonly core: VfioCore;
  /**
   * A daemon takeover: the memory of the device's memory BARs in the
   * previous daemon, by BAR index, which clients have mapped. A driver
   * whose device backs BARs with memory hands it to the device
   * (PciDeviceOptions.barMemory) instead of making fresh memory.
   */
  readonly barMemory?: ReadonlyArray<MappedMemory | undefined>;
}

/** How remove() is asked. */
export interface MdevRemoveOptions {
  /**
   * True when the parent is being unregistered: the device goes away
   * whatever remove() answers (a refusal is reported as a warning only).
   */
  readonly forced: boolean;
}

export interface MdevDriver {
  /** Prefix of every type id of this driver's parents. */
  readonly name: string;
  /** Default `device_api` of its types; `vfio-pci` when omitted. */
  readonly deviceApi?: string;
  /** The types its parents support, unless a parent is registered with its own list. */
  readonly types: readonly MdevTypeSpec[];

  /**
   * Builds and initialises the device for `info` (constructed with
   * `name: info.uuid, core: info.core`), but does not register it: the bus
   * does. A throw fails the create with that error. If the bus then cannot
   * register the device, it calls the device's release() itself, as the
   * kernel's vfio_put_device would, so whatever probe took is freed in
   * release() in every case.
   *
   * A driver with availableInstances must take its share of the pool
   * synchronously, before its first await, and refuse when the pool cannot
   * give it: the bus calls probe in the same turn it reserves, so concurrent
   * creates cannot overshoot. The refusal's errno is the driver's: EUSERS
   * for "no instance left", or a more precise one (mbochs: ENOSPC).
   */
  probe(info: MdevProbeInfo): VfioDevice | Promise<VfioDevice>;

  /**
   * For drivers whose types draw on a shared pool (a SharedPool: mtty's
   * ports, mbochs's memory, mdpy's devices): how many more instances of
   * `type` could be created now. When
   * absent, the bus counts instances against each type's maxInstances.
   * Must be synchronous and must not throw.
   */
  availableInstances?(type: MdevType): number;

  /**
   * The device is about to be removed (it is unlisted already, clients may
   * still be connected). Throwing a VfioError (EBUSY, say) refuses a user's
   * remove: the device is put back, listed and working. Not asked to agree
   * when `options.forced`. Freeing happens in the device's release(), which
   * runs once its last client is gone.
   */
  remove?(mdev: MdevDevice, options: MdevRemoveOptions): void | Promise<void>;
}
