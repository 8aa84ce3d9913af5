/** mbochs: a bochs-display the guest's `bochs` DRM driver binds to, and its mdev driver. */
export { MbochsDevice, MBOCHS_PCI, MBOCHS_MMIO_BAR, MBOCHS_MMIO_SIZE, MBOCHS_EDID_REGION, type MbochsDeviceOptions } from './mbochs-device.js';
export { MbochsDriver, MBOCHS_TYPES, type MbochsDriverOptions } from './mbochs-driver.js';
export { DispiRegisters, DISPI_INDEX, DISPI_ENABLE, DISPI_ID5, DISPI_MMIO_OFFSET } from './dispi.js';
export { EdidRegion, EDID_REGION_SIZE, EDID_BLOB_OFFSET, EDID_BLOB_MAX, EDID_REG, LINK_STATE } from './edid-region.js';
export { MemoryPool, DEFAULT_POOL_BYTES } from './memory-pool.js';
