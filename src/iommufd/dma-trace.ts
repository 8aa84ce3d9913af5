/**
 * The trace point of device DMA: every read, write or view a driver makes
 * of client memory through a DmaAccess, on a `node:diagnostics_channel`
 * channel, published only while someone subscribes (one `hasSubscribers`
 * check per access otherwise). `uvfio trace` shows them.
 */
import { channel } from 'node:diagnostics_channel';

/** Name of the channel of device DMA. */
export const DMA_CHANNEL = 'uvfio:iommufd:dma';

/** One DMA a device did (published after it succeeded). */
export interface DmaTrace {
  /** whose address space it reached: IoAddressSpace.traceOwner */
  owner: unknown;
  /** a view is the device keeping a window on the memory, to read or write later */
  op: 'read' | 'write' | 'view';
  iova: number;
  length: number;
}

export const dmaChannel = channel(DMA_CHANNEL);
