/** mdpy: a fixed-mode framebuffer display, and its mdev driver. */
export { MdpyDevice, MDPY_PCI, MDPY_VENDORCAP, type MdpyDeviceOptions } from './mdpy-device.js';
export { MdpyDriver, MDPY_MAX_DEVICES, MDPY_MODES, type MdpyDriverOptions } from './mdpy-driver.js';
