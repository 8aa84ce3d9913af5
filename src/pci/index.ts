/** An emulated PCI function and the vfio-pci library drivers build on. */
export * from './config-space.js';
export * from './bar.js';
export * from './capabilities.js';
export * from './msix-table.js';
export { PciInterrupts, type InterruptMode, type InterruptSources } from './interrupts.js';
export { VfioPciDevice, type PciDeviceOptions, type PciCapabilityOptions, type PciRomOptions } from './pci-device.js';
export { configFields, fieldsFrom, msixTableName, nameAccess, type RegisterField } from './register-names.js';
