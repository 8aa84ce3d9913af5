/**
 * The legacy group path (/dev/vfio/N): an IOMMU group holds devices that the
 * IOMMU cannot tell apart, so they are handed out together or not at all. A
 * group is viable only when every device in it is bound to uvfio; a
 * container takes viable groups, and device files are then got from a group
 * by name, already bound to the container's address space.
 */
import { VfioError } from '../base/errors.js';
import type { VfioDevice } from './device.js';
import { RECORD } from './device-record.js';
import { DeviceFile } from './device-file.js';
import type { VfioContainer } from './container.js';
import type { VfioCore } from './vfio-core.js';

export class VfioGroup {
  private readonly members = new Set<VfioDevice>();
  /** Devices of the group that are bound to some other driver, by name. */
  private readonly foreign = new Set<string>();
  private attached: VfioContainer | null = null;
  private readonly groupFiles = new Set<DeviceFile>();

  /** @internal use VfioCore.group() */
  constructor(
    readonly core: VfioCore,
    readonly id: number,
  ) {}

  /** Registered uvfio devices of the group. */
  get devices(): readonly VfioDevice[] {
    return [...this.members];
  }

  /** Every device of the group is bound to uvfio (VFIO_GROUP_FLAGS_VIABLE). */
  get viable(): boolean {
    return this.foreign.size === 0 && this.members.size > 0;
  }

  /** The container the group is attached to (VFIO_GROUP_FLAGS_CONTAINER_SET). */
  get container(): VfioContainer | null {
    return this.attached;
  }

  /** @internal true when nothing keeps the group alive */
  get isEmpty(): boolean {
    return this.members.size === 0 && this.foreign.size === 0 && this.attached === null;
  }

  /**
   * Declares a device of this group bound to a driver other than uvfio,
   * which makes the group not viable. EBUSY while the group is in use.
   */
  addForeignDevice(name: string): void {
    if (this.attached) throw new VfioError('EBUSY', `group ${this.id} is in a container; cannot add ${name}`);
    this.foreign.add(name);
  }

  /** The foreign device left the group (or was bound to uvfio). */
  removeForeignDevice(name: string): void {
    if (!this.foreign.delete(name)) throw new VfioError('ENOENT', `group ${this.id} has no foreign device ${name}`);
  }

  /** VFIO_GROUP_SET_CONTAINER */
  setContainer(container: VfioContainer): void {
    if (this.attached) throw new VfioError('EINVAL', `group ${this.id} is already in a container`);
    if (!this.viable) throw new VfioError('EPERM', `group ${this.id} is not viable: not all its devices are bound to uvfio`);
    container.attachGroup(this);
    this.attached = container;
  }

  /** VFIO_GROUP_UNSET_CONTAINER. EBUSY while device files opened through the group are open. */
  unsetContainer(): void {
    if (!this.attached) throw new VfioError('EINVAL', `group ${this.id} is not in a container`);
    if (this.groupFiles.size > 0) throw new VfioError('EBUSY', `group ${this.id} has open device files`);
    this.attached.detachGroup(this);
    this.attached = null;
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD: a file on the named device, bound to the
   * container's address space (so open_device has run when it resolves).
   * EINVAL without a container ready for use; ENODEV for a name not in the
   * group or a device going away; EBUSY when the device is open through its cdev.
   */
  async getDeviceFile(name: string): Promise<DeviceFile> {
    const container = this.attached;
    if (!container || !container.iommuSet) {
      throw new VfioError('EINVAL', `group ${this.id}: set a container and its IOMMU first`);
    }
    const device = [...this.members].find((d) => d.name === name);
    if (!device) throw new VfioError('ENODEV', `group ${this.id} has no device ${name}`);
    if (device[RECORD].openPath === 'cdev') {
      throw new VfioError('EBUSY', `${name} is open through its cdev`);
    }
    const file = new DeviceFile(device, 'group', this);
    this.groupFiles.add(file);
    try {
      await file.bindIommufd(container.context);
    } catch (err) {
      await file.close();
      throw err;
    }
    return file;
  }

  /** @internal DeviceFile.close() of a file opened through this group */
  fileClosed(file: DeviceFile): void {
    this.groupFiles.delete(file);
  }

  /** @internal */
  addDevice(device: VfioDevice): void {
    this.members.add(device);
  }

  /** @internal */
  removeDevice(device: VfioDevice): void {
    this.members.delete(device);
  }
}
