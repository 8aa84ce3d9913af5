/**
 * What a decoder may know beyond the bytes: the limits negotiated for the
 * session and, on the server, the shape of the device, so that an access to
 * a region or IRQ that does not exist is refused at the door.
 */
import { CapabilityDefault } from './protocol.js';

/**
 * Where the data of DMA_READ replies and DMA_WRITE requests starts.
 * 'spec': after address u64 + count u64 (body offset 16), as the spec and
 * libvfio-user have it. 'qemu': QEMU's client (hw/vfio-user, 10.1) declares
 * the struct as {u64 offset; u32 count; char data[]}, so its data starts at
 * body offset 12 and its messages end with 4 bytes of padding.
 */
export type DmaLayout = 'spec' | 'qemu';

/** The parts of a device a decoder checks indexes and bounds against. */
export interface DeviceShape {
  numRegions: number;
  numIrqs: number;
  /** bytes of region `index` (0 for a region the device does not implement) */
  regionSize(index: number): number;
  /** count and IrqInfoFlags of IRQ index `index` */
  irqInfo(index: number): { count: number; flags: number };
}

export interface DecodeContext {
  /** The receiver's own max_data_xfer_size (what it announced). Default 1 MiB. */
  maxDataXferSize?: number;
  /** When given, region and IRQ indexes and ranges are checked against it. */
  device?: DeviceShape;
  dmaLayout?: DmaLayout;
  /** The smallest DMA page size negotiated (pgsizes): DMA_MAP addresses and sizes are multiples of it. */
  dmaPageSize?: number;
}

/** The limit on data transfers a context implies. */
export function maxXfer(ctx: DecodeContext | undefined): number {
  return ctx?.maxDataXferSize ?? CapabilityDefault.MAX_DATA_XFER_SIZE;
}

/** Body offset of the data in a DMA_READ reply / DMA_WRITE request. */
export function dmaDataOffset(layout: DmaLayout | undefined): number {
  return layout === 'qemu' ? 12 : 16;
}
