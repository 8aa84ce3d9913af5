/**
 * uvfio: the VFIO device framework in userspace, served over vfio-user.
 * The top-level entry gathers what a device author, an operator's tooling
 * or a VMM/test author needs; the layers a user builds on are also their
 * own subpaths (`uvfio/core`, `uvfio/iommufd`, `uvfio/vfio-user`,
 * `uvfio/pci`, `uvfio/mdev`). The native layer is not: its raw system
 * calls (close, mmap...) are uvfio's own business.
 */
export * from './core/index.js';
export * from './iommufd/index.js';
export { VfioPciDevice, type PciDeviceOptions, type PciCapabilityOptions, type PciRomOptions } from './pci/index.js';
export {
  MdevBus,
  MdevParent,
  MdevType,
  MdevDevice,
  SysfsView,
  normalizeUuid,
  type MdevDriver,
  type MdevTypeSpec,
  type MdevProbeInfo,
  type MdevAttrs,
} from './mdev/index.js';
export { VfioUserServer, VfioUserClient, type VfioUserServerOptions, type VfioUserClientOptions } from './vfio-user/index.js';
export { MttyDevice, MttyDriver, createMttyDevice } from './drivers/mtty/index.js';
export { MdpyDevice, MdpyDriver } from './drivers/mdpy/index.js';
export { MbochsDevice, MbochsDriver } from './drivers/mbochs/index.js';
export { screenshotDevice, type DisplayPlane } from './drivers/display/index.js';
