/**
 * Numbers of the vfio-user protocol (QEMU docs/interop/vfio-user.rst) that
 * are not plain VFIO uAPI: command ids, header flags, wire struct sizes,
 * capability names and their defaults. VFIO's own constants (region, irq,
 * feature flags) live in ../core/uapi.ts.
 *
 * Everything on the wire is host-endian; uvfio targets little-endian hosts
 * (x86-64, aarch64), so every codec reads and writes little-endian.
 */

/** Command ids (header `cmd`). 14 was DIRTY_PAGES, removed from the spec. */
export const Command = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  /** Deprecated: decoded so that it can be refused with a clear errno. */
  DIRTY_PAGES: 14,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
  MIG_DATA_READ: 17,
  MIG_DATA_WRITE: 18,
} as const;

const COMMAND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Command).map(([name, id]) => [id, name]));

/** `VFIO_USER_DMA_MAP`-style name of a command id, for logs and errors. */
export function commandName(cmd: number): string {
  const name = COMMAND_NAMES[cmd];
  return name === undefined ? `command ${cmd}` : `VFIO_USER_${name}`;
}

/** Header `flags`. Bits 0-3 are the type; bits 6-31 are reserved. */
export const HeaderFlags = {
  TYPE_MASK: 0xf,
  TYPE_COMMAND: 0x0,
  TYPE_REPLY: 0x1,
  NO_REPLY: 0x10,
  ERROR: 0x20,
} as const;

/** Sizes in bytes of the fixed wire structs (the header is not included). */
export const Size = {
  HEADER: 16,
  /** major u16, minor u16, then optional NUL-terminated JSON */
  VERSION: 4,
  DMA_MAP: 32,
  DMA_UNMAP: 24,
  /** struct vfio_user_bitmap {pgsize u64, size u64} after DMA_UNMAP (dirty bitmap, deprecated) */
  BITMAP: 16,
  DEVICE_INFO: 16,
  REGION_INFO: 32,
  REGION_IO_FDS: 16,
  SUB_REGION_IO_FD: 40,
  IRQ_INFO: 16,
  IRQ_SET: 20,
  REGION_ACCESS: 16,
  DMA_ACCESS: 16,
  /** reply of DMA_WRITE per the spec table: address u64, count u32 */
  DMA_WRITE_REPLY: 12,
  WRITE_MULTI_COUNT: 8,
  WRITE_MULTI_ENTRY: 24,
  DEVICE_FEATURE: 8,
  MIG_DATA: 8,
  /** struct vfio_info_cap_header */
  CAP_HEADER: 8,
  /** header + nr_areas u32 + reserved u32 */
  CAP_SPARSE_MMAP: 16,
  SPARSE_MMAP_AREA: 16,
  /** header + type u32 + subtype u32 */
  CAP_TYPE: 16,
  /** DIRTY_PAGES request {argsz u32, flags u32} */
  DIRTY_PAGES: 8,
} as const;

/** Bytes of data one REGION_WRITE_MULTI entry can carry (writes of ≤ 8 bytes). */
export const WRITE_MULTI_DATA_MAX = 8;
/** Most entries one REGION_WRITE_MULTI may hold (QEMU's VFIO_USER_MULTI_MAX). */
export const WRITE_MULTI_MAX_ENTRIES = 200;

/** DMA_UNMAP flags (VFIO values). */
export const DmaUnmapFlags = {
  /** Deprecated dirty-page interface: a vfio_user_bitmap follows the request. */
  GET_DIRTY_BITMAP: 1 << 0,
  /** Unmap everything; address and size must be 0. */
  ALL: 1 << 1,
} as const;

/** DIRTY_PAGES request flags (removed command; kept to decode and refuse it). */
export const DirtyPagesFlags = {
  START: 1 << 0,
  STOP: 1 << 1,
  GET_BITMAP: 1 << 2,
} as const;

/** Sub-region types in a DEVICE_GET_REGION_IO_FDS reply. */
export const IoFdType = {
  IOEVENTFD: 0,
  IOREGIONFD: 1,
  /** libvfio-user extension: ioeventfd with a shadow memory fd */
  IOEVENTFD_SHADOW: 2,
} as const;

/** The protocol version uvfio speaks (same as libvfio-user). */
export const PROTOCOL_MAJOR = 0;
export const PROTOCOL_MINOR = 2;

/** JSON names in the VERSION capabilities object. */
export const CapabilityName = {
  ROOT: 'capabilities',
  MAX_MSG_FDS: 'max_msg_fds',
  MAX_DATA_XFER_SIZE: 'max_data_xfer_size',
  MAX_DMA_MAPS: 'max_dma_maps',
  PGSIZES: 'pgsizes',
  TWIN_SOCKET: 'twin_socket',
  TWIN_SOCKET_SUPPORTED: 'supported',
  TWIN_SOCKET_FD_INDEX: 'fd_index',
  WRITE_MULTIPLE: 'write_multiple',
  MIGRATION: 'migration',
  MIGRATION_PGSIZE: 'pgsize',
  MIGRATION_MAX_BITMAP_SIZE: 'max_bitmap_size',
} as const;

/** What a peer that leaves a capability out is taken to support. */
export const CapabilityDefault = {
  MAX_MSG_FDS: 1,
  MAX_DATA_XFER_SIZE: 1024 * 1024,
  MAX_DMA_MAPS: 65535,
  PGSIZES: 4096n,
  TWIN_SOCKET: false,
  WRITE_MULTIPLE: false,
  MIGRATION_PGSIZE: 4096,
  /** the kernel's limit, as QEMU uses it: 2^31 bytes of VA / 8 bits a byte */
  MIGRATION_MAX_BITMAP_SIZE: 256 * 1024 * 1024,
} as const;

/** Sanity bound on max_msg_fds (libvfio-user refuses more than this). */
export const MAX_MSG_FDS_LIMIT = 1024;

/**
 * The largest message a receiver needs to accept when data transfers are
 * limited to `maxDataXferSize`: a REGION_WRITE (or DMA_READ reply) carrying
 * that much data behind its 16-byte access struct.
 */
export function maxMessageSizeFor(maxDataXferSize: number): number {
  return Size.HEADER + Size.REGION_ACCESS + maxDataXferSize;
}

/** Default framing limit: room for a full default-sized data transfer. */
export const DEFAULT_MAX_MESSAGE_SIZE = maxMessageSizeFor(CapabilityDefault.MAX_DATA_XFER_SIZE);
