/**
 * virtio-blk on the mdev bus: types virtio-blk-rw (a read-write disk) and
 * virtio-blk-ro (read-only: VIRTIO_BLK_F_RO), each backed by the raw image
 * named by the device attribute `path` (mdevctl-style:
 * `uvfio define -p virtio-blk -t virtio-blk-rw --addattr path --value IMG`).
 *
 * Checked at create: `path` is given, absolute, exists (ENOENT), is a
 * regular file of at least one sector (EINVAL) that the daemon may open as
 * the type needs (EACCES), and is not served by another device unless all
 * of them are read-only (EBUSY; a file is known by device and inode, so a
 * second name for it is caught too). A parent serves a fixed number of
 * devices, both types together.
 */
import { isAbsolute } from 'node:path';
import { VfioError } from '../../base/errors.js';
import { SharedPool, type MdevDriver, type MdevProbeInfo, type MdevType, type MdevTypeSpec } from '../../mdev/index.js';
import { FileBackend } from './file-backend.js';
import { VirtioBlkDevice } from './virtio-blk-device.js';

/** Devices a parent serves unless told otherwise. */
export const VIRTIO_BLK_MAX_DEVICES = 16;

const TYPES: readonly MdevTypeSpec[] = [
  { name: 'rw', prettyName: 'virtio-blk-rw', description: 'virtio block device on a raw image (attribute path), read-write' },
  { name: 'ro', prettyName: 'virtio-blk-ro', description: 'virtio block device on a raw image (attribute path), read-only' },
];

export interface VirtioBlkDriverOptions {
  /** Devices the parent serves at once, both types together; default 16. */
  maxDevices?: number;
}

/** Who serves a file now: how many devices, and whether one may write. */
interface FileUse {
  devices: number;
  writable: boolean;
}

export class VirtioBlkDriver implements MdevDriver {
  readonly name = 'virtio-blk';
  readonly deviceApi = 'vfio-pci';
  readonly types = TYPES;
  readonly pool: SharedPool;
  /** Files in use, by device:inode. */
  readonly #files = new Map<string, FileUse>();

  constructor(options: VirtioBlkDriverOptions = {}) {
    this.pool = new SharedPool({ name: 'virtio-blk devices', size: options.maxDevices ?? VIRTIO_BLK_MAX_DEVICES });
  }

  availableInstances(type: MdevType): number {
    void type;
    return this.pool.available(1);
  }

  /** Takes the device's share at once (the bus relies on it), then opens and checks the file. */
  async probe(info: MdevProbeInfo): Promise<VirtioBlkDevice> {
    const readOnly = this.#readOnly(info.type);
    const path = this.#path(info.attrs);
    const share = this.pool.take(1, info.type.id);
    let backend: FileBackend;
    try {
      backend = await FileBackend.open(path, readOnly);
    } catch (err) {
      share.give();
      throw err;
    }
    // From the open on, one synchronous section: a concurrent create of the same file sees this claim.
    const use = this.#files.get(backend.id);
    if (use && (use.writable || !readOnly)) {
      share.give();
      void backend.close();
      throw new VfioError(
        'EBUSY',
        `virtio-blk: ${path} is served by another device${use.writable ? ' that writes it' : ''}; only read-only devices may share a file`,
      );
    }
    this.#files.set(backend.id, { devices: (use?.devices ?? 0) + 1, writable: !readOnly });
    const onRelease = (): void => {
      this.#unclaim(backend.id);
      share.give();
    };
    try {
      return new VirtioBlkDevice({ name: info.uuid, core: info.core, backend, onRelease });
    } catch (err) {
      onRelease();
      void backend.close();
      throw err;
    }
  }

  #unclaim(id: string): void {
    const use = this.#files.get(id);
    if (!use) return;
    if (--use.devices === 0) this.#files.delete(id);
  }

  #readOnly(type: MdevType): boolean {
    const name = type.id.slice(this.name.length + 1);
    if (name !== 'rw' && name !== 'ro') throw new VfioError('EINVAL', `virtio-blk has no type ${type.id}`);
    return name === 'ro';
  }

  #path(attrs: MdevProbeInfo['attrs']): string {
    const unknown = Object.keys(attrs).filter((k) => k !== 'path');
    if (unknown.length > 0) throw new VfioError('EINVAL', `virtio-blk takes the attribute path only (got ${unknown.join(', ')})`);
    const path = attrs.path;
    if (path === undefined || path === '') {
      throw new VfioError('EINVAL', 'virtio-blk needs the attribute path: the raw image to serve (--addattr path --value /abs/disk.img)');
    }
    if (!isAbsolute(path)) throw new VfioError('EINVAL', `virtio-blk: path ${JSON.stringify(path)} must be absolute`);
    return path;
  }
}
