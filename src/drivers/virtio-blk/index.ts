/** virtio-blk: a disk on a raw image file, and its mdev driver. */
export { FileBackend, SECTOR_SIZE } from './file-backend.js';
export { VirtioBlkDevice, VIRTIO_BLK_CONFIG, VIRTIO_BLK_F, VIRTIO_BLK_LIMITS, VIRTIO_BLK_S, VIRTIO_BLK_T } from './virtio-blk-device.js';
export { VirtioBlkDriver, VIRTIO_BLK_MAX_DEVICES } from './virtio-blk-driver.js';
