/**
 * The numbers of the virtio 1.x specification that the PCI transport and
 * split virtqueues use (virtio-v1.2, sections 2, 4.1 and 6), named as the
 * Linux uapi headers name them (virtio_config.h, virtio_pci.h, virtio_ring.h).
 */

/** PCI vendor of every virtio device; device ID is 0x1040 + the virtio device ID (4.1.2). */
export const VIRTIO_PCI_VENDOR = 0x1af4;
export const VIRTIO_PCI_MODERN_DEVICE_BASE = 0x1040;

/** device_status bits (2.1). */
export const VIRTIO_STATUS = {
  ACKNOWLEDGE: 0x01,
  DRIVER: 0x02,
  DRIVER_OK: 0x04,
  FEATURES_OK: 0x08,
  NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Transport feature bits (6), as bit numbers. */
export const VIRTIO_F = {
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  VERSION_1: 32,
} as const;

/** cfg_type of a virtio_pci_cap (4.1.4). */
export const VIRTIO_PCI_CAP = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
} as const;

/** Offsets in struct virtio_pci_common_cfg (4.1.4.3). */
export const COMMON_CFG = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  MSIX_CONFIG: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  /** virtio 1.2's queue_notify_data and queue_reset: read as 0 (their features are not offered). */
  SIZE: 0x3c,
} as const;

/** "No MSI-X vector": the interrupt is not sent by MSI-X. */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** ISR status bits (4.1.4.5), read-to-clear. */
export const VIRTIO_ISR = { QUEUE: 0x1, CONFIG: 0x2 } as const;

/** Split virtqueue layout (2.7). */
export const VIRTQ_DESC = {
  SIZE: 16,
  F_NEXT: 1,
  F_WRITE: 2,
  F_INDIRECT: 4,
} as const;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** Largest split queue the spec allows. */
export const VIRTQ_MAX_SIZE = 32768;

/** Bit `n` of a 64-bit feature word. */
export function featureBit(n: number): bigint {
  return 1n << BigInt(n);
}

/** vring_need_event(): whether moving the used index from `old` to `next` passes the driver's `event`. */
export function needEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}
