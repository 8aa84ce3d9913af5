/** mtty: a PCI serial card of 16550A UARTs looped back on themselves, and its mdev driver. */
export { MttyDevice, createMttyDevice } from './mtty-device.js';
export { MttyDriver } from './mtty-driver.js';
