/** mtty: a PCI serial card of 16550A UARTs looped back on themselves, and its mdev driver. */
export { Uart16550, UART_REG, UART_REG_COUNT, UART_FIFO_SIZE } from './uart.js';
export { MttyDevice, MTTY_PCI, createMttyDevice, type MttyDeviceOptions, type MttyPortCount } from './mtty-device.js';
export { MttyDriver, MTTY_POOL_PORTS, type MttyDriverOptions } from './mtty-driver.js';
