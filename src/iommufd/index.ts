/** iommufd: contexts, I/O address spaces and the DMA access drivers use. */
export { IommufdContext } from './context.js';
export {
  IoAddressSpace,
  DmaAccess,
  MAX_IOVA_END,
  type DmaMapping,
  type DmaAccessOps,
  type MapOptions,
  type AddressSpaceOptions,
} from './address-space.js';
export { MemoryBacking, type DmaBacking, type DmaReach } from './dma-backing.js';
export { DirtyLog, MAX_LOG_RANGES, MIN_DIRTY_PAGE, bitmapBytes, type DirtyRange } from './dirty-log.js';
export { DMA_CHANNEL, dmaChannel, type DmaTrace } from './dma-trace.js';
