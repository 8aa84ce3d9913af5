/** The mediated-device bus: parents, types, instances, create/remove, the sysfs view. */
export { MdevBus, type MdevBusOptions, type MdevBusEvents, type MdevCreateOptions } from './mdev-bus.js';
export { MdevParent, type MdevParentOptions, type MdevParentState } from './mdev-parent.js';
export { MdevType } from './mdev-type.js';
export { MdevDevice, type MdevDeviceState } from './mdev-device.js';
export type { MdevDriver, MdevTypeSpec, MdevProbeInfo, MdevRemoveOptions, MdevAttrs } from './mdev-driver.js';
export { SysfsView, type SysfsStat } from './sysfs-view.js';
export { SysfsMirror } from './sysfs-mirror.js';
export { normalizeUuid, isCanonicalUuid } from './uuid.js';
export { SharedPool, PoolShare, type SharedPoolOptions } from './shared-pool.js';
