/**
 * What user space sees of a VFIO device: the constants of
 * include/uapi/linux/vfio.h that vfio-user carries unchanged, and the typed
 * shapes of the info a device reports. The wire codec encodes these; drivers
 * return them from their ops.
 */

/** vfio_device_info.flags */
export const DeviceFlags = {
  RESET: 1 << 0,
  PCI: 1 << 1,
  PLATFORM: 1 << 2,
  AMBA: 1 << 3,
  CCW: 1 << 4,
  AP: 1 << 5,
  FSL_MC: 1 << 6,
  CAPS: 1 << 7,
  CDX: 1 << 8,
} as const;

/** vfio_region_info.flags */
export const RegionFlags = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  MMAP: 1 << 2,
  CAPS: 1 << 3,
} as const;

/** Region info capability ids. */
export const RegionCap = {
  SPARSE_MMAP: 1,
  TYPE: 2,
} as const;

/** Device-specific region types (vfio_region_info_cap_type). */
export const RegionType = {
  PCI_VENDOR_TYPE: 0x80000000,
  GFX: 1,
  /** subtype of GFX: the EDID region of a display device */
  GFX_EDID_SUBTYPE: 1,
} as const;

/** vfio_irq_info.flags */
export const IrqInfoFlags = {
  EVENTFD: 1 << 0,
  MASKABLE: 1 << 1,
  AUTOMASKED: 1 << 2,
  NORESIZE: 1 << 3,
} as const;

/** vfio_irq_set.flags: exactly one DATA_* and one ACTION_* per request. */
export const IrqSetFlags = {
  DATA_NONE: 1 << 0,
  DATA_BOOL: 1 << 1,
  DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3,
  ACTION_UNMASK: 1 << 4,
  ACTION_TRIGGER: 1 << 5,
  DATA_TYPE_MASK: (1 << 0) | (1 << 1) | (1 << 2),
  ACTION_TYPE_MASK: (1 << 3) | (1 << 4) | (1 << 5),
} as const;

/** Region indexes of a vfio-pci device. */
export const PciRegion = {
  BAR0: 0,
  BAR1: 1,
  BAR2: 2,
  BAR3: 3,
  BAR4: 4,
  BAR5: 5,
  ROM: 6,
  CONFIG: 7,
  VGA: 8,
  NUM: 9,
} as const;

/** IRQ indexes of a vfio-pci device. */
export const PciIrq = {
  INTX: 0,
  MSI: 1,
  MSIX: 2,
  ERR: 3,
  REQ: 4,
  NUM: 5,
} as const;

/** vfio_iommu_type1_dma_map.flags / DMA permission bits. */
export const DmaProt = {
  READ: 1 << 0,
  WRITE: 1 << 1,
} as const;

/** vfio_device_feature.flags */
export const FeatureFlags = {
  MASK: 0xffff,
  GET: 1 << 16,
  SET: 1 << 17,
  PROBE: 1 << 18,
} as const;

/** Device feature numbers. */
export const Feature = {
  PCI_VF_TOKEN: 0,
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
} as const;

/** vfio_device_feature_migration.flags: which optional migration states a device has. */
export const MigrationFlags = {
  /** STOP, STOP_COPY and RESUMING (every migrating device has them) */
  STOP_COPY: 1 << 0,
  /** RUNNING_P2P (and PRE_COPY_P2P with PRE_COPY) */
  P2P: 1 << 1,
  /** PRE_COPY (and PRE_COPY_P2P with P2P) */
  PRE_COPY: 1 << 2,
} as const;

/** vfio_device_mig_state */
export const MigState = {
  ERROR: 0,
  STOP: 1,
  RUNNING: 2,
  STOP_COPY: 3,
  RESUMING: 4,
  RUNNING_P2P: 5,
  PRE_COPY: 6,
  PRE_COPY_P2P: 7,
} as const;

/** One of the MigState values. */
export type MigStateValue = (typeof MigState)[keyof typeof MigState];

/** VFIO_MIG_GET_PRECOPY_INFO: what a PRE_COPY stream holds for reading now. */
export interface PrecopyInfo {
  /** bytes of the initial state not yet read */
  initialBytes: number;
  /** bytes of state changed since it was read */
  dirtyBytes: number;
}

/** What VFIO_DEVICE_GET_INFO reports. */
export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
}

/** One mmap-able window of a region (VFIO_REGION_INFO_CAP_SPARSE_MMAP). */
export interface SparseMmapArea {
  /** offset inside the region */
  offset: number;
  size: number;
}

/** What VFIO_DEVICE_GET_REGION_INFO reports for one region. */
export interface RegionInfo {
  index: number;
  /** RegionFlags; CAPS is added by the codec when caps are present */
  flags: number;
  /** bytes; 0 for a region the device does not implement */
  size: number;
  /** mmap-able windows; when absent and MMAP is set, the whole region is */
  sparseMmap?: readonly SparseMmapArea[];
  /** device-specific region type (VFIO_REGION_INFO_CAP_TYPE) */
  type?: { type: number; subtype: number };
  /**
   * The file that backs the mmap-able parts: region offset X is file offset
   * `offset + X`. The device keeps ownership of the fd; the transport only
   * sends a duplicate of it to the client.
   */
  mmap?: { fd: number; offset: number };
}

/** What VFIO_DEVICE_GET_IRQ_INFO reports for one IRQ index. */
export interface IrqInfo {
  index: number;
  /** IrqInfoFlags */
  flags: number;
  count: number;
}

/**
 * Where a device signals an interrupt: an eventfd passed by a client, or a
 * callback in tests. Whoever handed it over may close it at any time (a
 * client that disconnects takes its eventfds with it); signal() on a closed
 * notifier does nothing, so a device never writes to a stale fd.
 */
export interface EventNotifier {
  signal(): void;
  /** Idempotent. */
  close(): void;
  readonly closed: boolean;
}

/**
 * VFIO_DEVICE_SET_IRQS, decoded: `action` and `data` are the single ACTION_*
 * and DATA_* flags of the request; `values` holds one entry per IRQ for
 * DATA_BOOL, one notifier (or null to unassign) per IRQ for DATA_EVENTFD.
 */
export type SetIrqsRequest = {
  index: number;
  start: number;
  count: number;
  action: 'mask' | 'unmask' | 'trigger';
} & ({ data: 'none' } | { data: 'bool'; values: readonly boolean[] } | { data: 'eventfd'; values: readonly (EventNotifier | null)[] });

/** VFIO_DEVICE_FEATURE, decoded. */
export interface FeatureRequest {
  feature: number;
  op: 'get' | 'set' | 'probe';
  /** the payload after the vfio_device_feature header (set), or room for the answer (get) */
  data: Uint8Array;
}
