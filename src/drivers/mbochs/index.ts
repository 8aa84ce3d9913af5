/** mbochs: a bochs-display the guest's `bochs` DRM driver binds to, and its mdev driver. */
export { MbochsDevice, MBOCHS_EDID_REGION } from './mbochs-device.js';
export { MbochsDriver } from './mbochs-driver.js';
export { DISPI_INDEX, DISPI_ENABLE, DISPI_ID5 } from './dispi.js';
export { EDID_BLOB_OFFSET, EDID_REG, LINK_STATE } from './edid-region.js';
