/** mdpy: a fixed-mode framebuffer display, and its mdev driver. */
export { MdpyDevice, MDPY_VENDORCAP } from './mdpy-device.js';
export { MdpyDriver } from './mdpy-driver.js';
