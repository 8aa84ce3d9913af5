/**
 * The typed shapes of vfio-user message bodies, as the decoders return them
 * and the encoders take them. Field names follow the spec (camelCased).
 * 64-bit addresses, sizes and masks that may use every bit are bigints;
 * offsets and sizes that must fit a region are numbers.
 *
 * Byte arrays (`data`) returned by decoders are views into the message body:
 * they live as long as the body does (see parser.ts).
 */
import type { SparseMmapArea } from '../base/uapi.js';

// ---------------------------------------------------------------- VERSION

/** Capabilities exactly as a peer stated them; absent means "not stated". */
export interface PeerCapabilities {
  maxMsgFds?: number;
  maxDataXferSize?: number;
  maxDmaMaps?: number;
  /** bitmask of supported DMA page sizes */
  pgsizes?: bigint;
  twinSocket?: { supported?: boolean; fdIndex?: number };
  writeMultiple?: boolean;
  migration?: { pgsize?: number; maxBitmapSize?: number };
}

/** VERSION request and reply body. */
export interface VersionMessage {
  major: number;
  minor: number;
  /** undefined when the message carried no JSON at all */
  capabilities: PeerCapabilities | undefined;
}

// ---------------------------------------------------------------- DMA map

/** DMA_MAP request. `fd` is the message's fd when one was sent (the caller owns it). */
export interface DmaMapRequest {
  argsz: number;
  flags: number;
  readable: boolean;
  writable: boolean;
  /** offset of the mapping inside `fd` */
  offset: bigint;
  address: bigint;
  size: bigint;
  fd: number | null;
}

/** DMA_UNMAP request (and the reply, which echoes it). */
export interface DmaUnmapRequest {
  argsz: number;
  flags: number;
  /** VFIO_DMA_UNMAP_FLAG_ALL: address and size are 0, every mapping goes */
  all: boolean;
  address: bigint;
  size: bigint;
}

// ---------------------------------------------------------------- device info

/** Request of DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO: argsz bounds the reply. */
export interface InfoRequest {
  argsz: number;
  /** region or irq index; 0 for DEVICE_GET_INFO */
  index: number;
}

/** DEVICE_GET_INFO reply. */
export interface DeviceInfoReply {
  argsz: number;
  flags: number;
  numRegions: number;
  numIrqs: number;
}

/** A capability in a region info chain that uvfio does not interpret. */
export interface UnknownRegionCap {
  id: number;
  version: number;
  /** bytes after the 8-byte cap header, up to the next cap (or the end) */
  data: Uint8Array;
}

/** DEVICE_GET_REGION_INFO reply. */
export interface RegionInfoReply {
  /** bytes the full reply needs; more than the request's argsz means caps were left out */
  argsz: number;
  flags: number;
  index: number;
  capOffset: number;
  size: number;
  /** mmap offset of the region in the fd the reply carries */
  offset: number;
  sparseMmap?: SparseMmapArea[];
  type?: { type: number; subtype: number };
  otherCaps?: UnknownRegionCap[];
  /** the mmap fd, when the reply carried one (the caller owns it) */
  fd: number | null;
}

/** DEVICE_GET_IRQ_INFO reply. */
export interface IrqInfoReply {
  argsz: number;
  flags: number;
  index: number;
  count: number;
}

// ---------------------------------------------------------------- io fds

/** One sub-region of a DEVICE_GET_REGION_IO_FDS reply. */
export interface SubRegionIoFd {
  offset: bigint;
  size: bigint;
  fdIndex: number;
  /** IoFdType */
  type: number;
  flags: number;
  /** ioeventfd: shadow fd index (libvfio-user) or padding */
  aux: number;
  /** ioeventfd: datamatch; ioregionfd: user_data */
  datamatch: bigint;
  /** libvfio-user's shadow ioeventfd: offset in the shadow memory fd */
  shadowOffset?: bigint;
}

/** DEVICE_GET_REGION_IO_FDS request. */
export interface RegionIoFdsRequest {
  argsz: number;
  index: number;
}

/** DEVICE_GET_REGION_IO_FDS reply. `subRegions` is empty when argsz was too small. */
export interface RegionIoFdsReply {
  argsz: number;
  flags: number;
  index: number;
  count: number;
  subRegions: SubRegionIoFd[];
  fds: number[];
}

// ---------------------------------------------------------------- irqs

export type IrqAction = 'mask' | 'unmask' | 'trigger';

interface SetIrqsBase {
  argsz: number;
  flags: number;
  index: number;
  start: number;
  count: number;
  action: IrqAction;
}

/**
 * DEVICE_SET_IRQS request. For DATA_EVENTFD, `fds` holds one eventfd per IRQ
 * in [start, start+count), or is empty to de-assign them (the caller owns
 * the fds). DATA_NONE with count 0 and action trigger disables the index.
 */
export type SetIrqsMessage = SetIrqsBase & ({ data: 'none' } | { data: 'bool'; values: boolean[] } | { data: 'eventfd'; fds: number[] });

// ---------------------------------------------------------------- region access

/**
 * REGION_READ / REGION_WRITE request or reply. `data` is empty for a read
 * request and a write reply.
 */
export interface RegionAccess {
  offset: number;
  region: number;
  count: number;
  data: Uint8Array;
}

/** One write of a REGION_WRITE_MULTI request. */
export interface WriteMultiEntry {
  offset: number;
  region: number;
  /** 1 to 8 */
  count: number;
  /** `count` bytes (the entry's 8-byte slot is padded) */
  data: Uint8Array;
}

// ---------------------------------------------------------------- DMA access

/** DMA_READ / DMA_WRITE request or reply (server → client direction). */
export interface DmaRwMessage {
  address: bigint;
  count: number;
  data: Uint8Array;
}

// ---------------------------------------------------------------- features, migration

/** DEVICE_FEATURE request or reply. */
export interface DeviceFeatureMessage {
  argsz: number;
  flags: number;
  /** flags & VFIO_DEVICE_FEATURE_MASK */
  feature: number;
  get: boolean;
  set: boolean;
  probe: boolean;
  data: Uint8Array;
}

/** MIG_DATA_READ request (no data) and MIG_DATA_WRITE request / MIG_DATA_READ reply (data). */
export interface MigData {
  argsz: number;
  size: number;
  data: Uint8Array;
}

/** The removed DIRTY_PAGES request, decoded only to be refused. */
export interface DirtyPagesRequest {
  argsz: number;
  flags: number;
}
