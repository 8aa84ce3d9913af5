/** The virtio 1.x PCI transport: what a virtio device type builds on. */
export { DescriptorChain, type Segment } from './descriptor-chain.js';
export * from './spec.js';
export { VirtioPciDevice, VIRTIO_BAR, type ServeResult, type VirtioPciDeviceOptions } from './virtio-pci-device.js';
export { Virtqueue, VIRTQ_MAX_INDIRECT, type VirtqueueMode } from './virtqueue.js';
