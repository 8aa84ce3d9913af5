/**
 * An open file on a device (the kernel's vfio_device_file): one per client
 * connection. Opening takes a registration reference; the file is inert
 * until bound to an iommufd context (cdev path: BIND_IOMMUFD; group path:
 * bound to the container's context at open). Binding the first file of a
 * device runs open_device, closing the last one runs close_device, both
 * under the set lock. Every op before bind fails with EINVAL.
 *
 * Ops return their value directly when the driver answered synchronously and
 * the set lock was free, or a promise otherwise: `await` them either way.
 */
import { VfioError } from '../base/errors.js';
import type { RegionMmap, VfioDevice } from './device.js';
import { RECORD } from './device-record.js';
import type { DeviceSet } from './device-set.js';
import type { SetLockToken } from './set-lock.js';
import type { DeviceInfo, FeatureRequest, IrqInfo, MigStateValue, PrecopyInfo, RegionInfo, SetIrqsRequest } from '../base/uapi.js';
import { migrationOf } from './device-migration.js';
import { after } from './maybe-async.js';
import type { VfioGroup } from './group.js';
import type { IommufdContext } from '../iommufd/context.js';
import type { DmaAccess } from '../iommufd/address-space.js';
import type { DirtyRange } from '../iommufd/dirty-log.js';

export type FileState = 'open' | 'binding' | 'bound' | 'closed';

/** One device of a set, as VFIO_DEVICE_GET_PCI_HOT_RESET_INFO lists it. */
export interface HotResetDevice {
  name: string;
  /** legacy IOMMU group number */
  groupId: number;
  /** whether some file has it open */
  opened: boolean;
}

export class DeviceFile {
  private fileState: FileState = 'open';
  private ctx: IommufdContext | null = null;
  private dmaAccess: DmaAccess | null = null;
  private binding: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  /** @internal use VfioDevice.openFile() or VfioGroup.getDeviceFile() */
  constructor(
    readonly device: VfioDevice,
    /** which way the file was opened; the two paths exclude each other */
    readonly path: 'cdev' | 'group',
    /** the group it was opened through (group path only) */
    readonly viaGroup: VfioGroup | null,
  ) {
    const rec = device[RECORD];
    // vfio_device_try_get_registration: no new file once unregister began.
    if (rec.state !== 'registered') {
      throw new VfioError('ENODEV', `${device.name}: device is ${rec.state === 'initialized' ? 'not registered' : 'going away'}`);
    }
    rec.refs++;
    rec.files.add(this);
  }

  get state(): FileState {
    return this.fileState;
  }
  /** The context this file is bound to. */
  get context(): IommufdContext | null {
    return this.ctx;
  }
  /** Client memory through this file's context; null until bound. */
  get access(): DmaAccess | null {
    return this.dmaAccess;
  }

  /**
   * Binds the file to an iommufd context (VFIO_DEVICE_BIND_IOMMUFD): the
   * first bound file of the device runs open_device. A second bind is
   * EINVAL; a failing open_device leaves the device closed and the file
   * open but unbound, and its error goes to this caller only.
   */
  bindIommufd(ctx: IommufdContext): Promise<void> {
    if (this.closing) {
      return Promise.reject(new VfioError('EINVAL', `${this.device.name}: file is closing, cannot bind`));
    }
    if (this.fileState !== 'open') {
      return Promise.reject(new VfioError('EINVAL', `${this.device.name}: file is ${this.fileState}, cannot bind`));
    }
    if (!ctx.alive) {
      return Promise.reject(new VfioError('EINVAL', 'bind: the iommufd context was destroyed'));
    }
    this.fileState = 'binding';
    const set = this.set();
    // The file becomes 'bound' inside openLocked, under the set lock: a
    // set-wide op queued behind this bind must see it bound, never half-way.
    this.binding = set.lock
      .runAsync((token) => this.openLocked(token, ctx))
      .catch((err: unknown) => {
        if (this.fileState === 'binding') this.fileState = 'open';
        throw err;
      });
    return this.binding;
  }

  /**
   * Closes the file: drops the DMA access, runs close_device if it was the
   * last bound file, and gives back the registration reference (which may
   * let a pending unregister finish). Idempotent; waits for a bind under way.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.binding) await this.binding.catch(() => undefined);
    const wasBound = this.fileState === 'bound';
    this.fileState = 'closed';
    const device = this.device;
    const rec = device[RECORD];
    if (wasBound) {
      await this.set().lock.runAsync((token) => this.closeLocked(token));
    }
    rec.files.delete(this);
    this.viaGroup?.fileClosed(this);
    device.core.putRegistration(device);
  }

  // ---- ops ------------------------------------------------------------------

  getInfo(): DeviceInfo | Promise<DeviceInfo> {
    return this.op(() => this.device.getInfo());
  }
  getRegionInfo(index: number): RegionInfo | Promise<RegionInfo> {
    return this.op(() => this.device.getRegionInfo(index));
  }
  getIrqInfo(index: number): IrqInfo | Promise<IrqInfo> {
    return this.op(() => this.device.getIrqInfo(index));
  }
  setIrqs(request: SetIrqsRequest): void | Promise<void> {
    return this.op(() => this.device.setIrqs(request));
  }
  /** A takeover's SET_IRQS without side effects (see VfioDevice.adoptIrqs). */
  adoptIrqs(request: SetIrqsRequest): void | Promise<void> {
    return this.op(() => this.device.adoptIrqs(request));
  }
  regionRead(index: number, offset: number, dest: Uint8Array): void | Promise<void> {
    return this.dataOp(false, index, offset, dest);
  }
  regionWrite(index: number, offset: number, src: Uint8Array): void | Promise<void> {
    return this.dataOp(true, index, offset, src);
  }
  /**
   * The device's memory behind an access (VfioDevice.regionMemory), or null:
   * the device has none there, or the set lock is held (the access then
   * waits its turn through regionRead/regionWrite).
   */
  regionMemory(index: number, offset: number, count: number, write: boolean): Uint8Array | null {
    this.assertBound();
    const lock = this.set().lock;
    if (!lock.enter()) return null;
    let memory: Uint8Array | null;
    try {
      memory = this.device.regionMemory(index, offset, count, write);
    } catch (err) {
      lock.leaveAfterThrow();
      throw err;
    }
    // Not a promise: leave() releases at once and gives it back as is.
    return lock.leave(memory) as Uint8Array | null;
  }
  /**
   * The whole of region `index` (`size` bytes) as the device's memory for
   * reads and for writes (regionMemory), where it gives that: for a server
   * that answers accesses from it while this file stays bound. Each
   * null where the device gives none, the range is refused, or the set
   * lock is held now.
   */
  wholeRegionMemory(index: number, size: number): { read: Uint8Array | null; write: Uint8Array | null } {
    const whole = (write: boolean): Uint8Array | null => {
      try {
        return this.regionMemory(index, 0, size, write);
      } catch {
        return null;
      }
    };
    return { read: whole(false), write: whole(true) };
  }

  /** True when a region access would run at once: the file is bound and its set's lock free (nobody holds it, nobody waits). */
  get accessRunsAtOnce(): boolean {
    return this.fileState === 'bound' && this.set().lock.idle;
  }

  /** A cell (Int32Array) that is nonzero while the set's lock is not free: accessRunsAtOnce for code that cannot call it. */
  get lockBusyCell(): Int32Array {
    return this.set().lock.busyCell;
  }

  mmap(index: number): RegionMmap | Promise<RegionMmap> {
    return this.op(() => this.device.mmap(index));
  }
  /** VFIO_DEVICE_RESET; a device that migrates is RUNNING again afterwards. */
  reset(): void | Promise<void> {
    return this.op((token) => resetDevice(this.device, token));
  }
  deviceFeature(request: FeatureRequest): Uint8Array | void | Promise<Uint8Array | void> {
    return this.op(() => this.device.deviceFeature(request));
  }

  // ---- migration v2 (the core's; see device-migration.ts) ------------------

  /** VFIO_DEVICE_FEATURE_MIGRATION: the device's MigrationFlags; ENOTTY when it cannot migrate. */
  migrationFlags(): number | Promise<number> {
    return this.op((token) => migrationOf(this.device).flags(token));
  }
  /** GET of VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE; ENOTTY when the device cannot migrate. */
  migrationState(): MigStateValue | Promise<MigStateValue> {
    return this.op((token) => {
      const m = migrationOf(this.device);
      m.flags(token);
      return m.state;
    });
  }
  /** SET of VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: walks the allowed arcs to `state`. */
  setMigrationState(state: number): Promise<void> {
    return Promise.resolve(this.op((token) => migrationOf(this.device).setState(token, state)));
  }
  /** MIG_DATA_READ: up to `size` bytes of the saving stream (fewer: no more for now, or the end). */
  migrationDataRead(size: number): Uint8Array | Promise<Uint8Array> {
    return this.op((token) => migrationOf(this.device).read(token, size));
  }
  /** MIG_DATA_WRITE: more of the stream being resumed. */
  migrationDataWrite(data: Uint8Array): void | Promise<void> {
    return this.op((token) => migrationOf(this.device).write(token, data));
  }
  /** VFIO_MIG_GET_PRECOPY_INFO: what the PRE_COPY stream holds now. */
  migrationPrecopyInfo(): PrecopyInfo | Promise<PrecopyInfo> {
    return this.op((token) => migrationOf(this.device).precopyInfo(token));
  }

  // ---- DMA logging: the writes the device makes through this file's access --

  /**
   * DMA_LOGGING_START over this file's DMA access (its client's memory):
   * logs `ranges` (none: all) and returns the page size used.
   */
  dmaLoggingStart(pageSize: number, ranges: readonly DirtyRange[]): number | Promise<number> {
    return this.op(() => this.bound().dirty.start(pageSize, ranges));
  }
  /** DMA_LOGGING_STOP. */
  dmaLoggingStop(): void | Promise<void> {
    return this.op(() => this.bound().dirty.stop());
  }
  /** DMA_LOGGING_REPORT: the pages written in [iova, iova+length), read and cleared. */
  dmaLoggingReport(iova: number, length: number, pageSize: number, maxBytes: number): Uint8Array | Promise<Uint8Array> {
    return this.op(() => this.bound().dirty.report(iova, length, pageSize, maxBytes));
  }

  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: every device of this file's set. */
  getPciHotResetInfo(): HotResetDevice[] | Promise<HotResetDevice[]> {
    return this.op(() =>
      [...this.set().devices].map((d) => ({
        name: d.name,
        groupId: d.group?.id ?? -1,
        opened: d.openCount > 0,
      })),
    );
  }

  /**
   * VFIO_DEVICE_PCI_HOT_RESET: resets every device of the set, opened or
   * not, with no other op of the set running meanwhile. Allowed only when
   * every opened device of the set is bound to this file's context alone
   * (EPERM otherwise): a reset must not pull a device from under someone else.
   */
  pciHotReset(): void | Promise<void> {
    this.assertBound();
    return this.set().lock.run((token) => this.hotResetLocked(token));
  }

  // ---- internals ------------------------------------------------------------

  // The data path: a free lock is taken without a closure or a token.
  private dataOp(write: boolean, index: number, offset: number, bytes: Uint8Array): void | Promise<void> {
    this.assertBound();
    const lock = this.set().lock;
    const device = this.device;
    if (!lock.enter()) {
      return lock.run(() => (write ? device.regionWrite(index, offset, bytes) : device.regionRead(index, offset, bytes)));
    }
    let result: void | Promise<void>;
    try {
      result = write ? device.regionWrite(index, offset, bytes) : device.regionRead(index, offset, bytes);
    } catch (err) {
      lock.leaveAfterThrow();
      throw err;
    }
    return lock.leave(result);
  }

  private op<T>(fn: (token: SetLockToken) => T | Promise<T>): T | Promise<T> {
    this.assertBound();
    return this.set().lock.run(fn);
  }

  private bound(): DmaAccess {
    if (this.dmaAccess === null) throw new VfioError('EINVAL', `${this.device.name}: file is ${this.fileState}; bind it first`);
    return this.dmaAccess;
  }

  private assertBound(): void {
    if (this.fileState !== 'bound') {
      throw new VfioError('EINVAL', `${this.device.name}: file is ${this.fileState}; bind it to an iommufd context first`);
    }
  }

  private set(): DeviceSet {
    // A file holds a registration reference, so the device keeps its set.
    const set = this.device[RECORD].set;
    if (!set) throw new VfioError('ENODEV', `${this.device.name}: device has no set (released?)`);
    return set;
  }

  private async openLocked(token: SetLockToken, ctx: IommufdContext): Promise<void> {
    const device = this.device;
    const rec = device[RECORD];
    token.assertHolds(this.set().lock);
    if (this.fileState !== 'binding') {
      throw new VfioError('EINVAL', `${device.name}: file was closed while binding`);
    }
    if (rec.openPath !== null && rec.openPath !== this.path) {
      throw new VfioError('EBUSY', `${device.name}: device is open through the ${rec.openPath} path`);
    }
    if (!ctx.alive) throw new VfioError('EINVAL', 'bind: the iommufd context was destroyed');
    if (rec.openCount === 0) {
      await device.openDevice();
      rec.openPath = this.path;
    }
    rec.openCount++;
    this.ctx = ctx;
    this.dmaAccess = ctx.ioas.attachAccess({ dmaUnmap: (iova, length) => device.dmaUnmap(iova, length) });
    this.fileState = 'bound';
  }

  private async hotResetLocked(token: SetLockToken): Promise<void> {
    const set = this.set();
    token.assertHolds(set.lock);
    // f.ctx is set and cleared under this lock, so it is exact here even
    // for a file that is closing or whose bind just finished.
    for (const dev of set.devices) {
      for (const f of dev[RECORD].files) {
        if (f.ctx !== null && f.ctx !== this.ctx) {
          throw new VfioError('EPERM', `hot reset: ${dev.name} is open in another context`);
        }
      }
    }
    // Release takes the set lock too, so no device leaves the set meanwhile.
    for (const dev of [...set.devices]) await resetDevice(dev, token);
  }

  private async closeLocked(token: SetLockToken): Promise<void> {
    const device = this.device;
    const rec = device[RECORD];
    token.assertHolds(this.set().lock);
    this.dmaAccess?.detach();
    this.dmaAccess = null;
    this.ctx = null;
    rec.openCount--;
    if (rec.openCount === 0) {
      rec.openPath = null;
      try {
        // The next user finds a running device with no migration session.
        await rec.migration?.backToRunning(token);
      } catch (err) {
        process.emitWarning(`${device.name}: restarting a stopped device at close failed: ${(err as Error).message}`);
      }
      try {
        await device.closeDevice();
      } catch (err) {
        process.emitWarning(`${device.name}: close_device failed: ${(err as Error).message}`);
      }
    }
  }
}

/**
 * A device's reset op, then (when it migrates) back to RUNNING: a reset
 * leaves ERROR and ends any migration session, as the uAPI says.
 */
function resetDevice(device: VfioDevice, token: SetLockToken): void | Promise<void> {
  const done = (): void | Promise<void> => device[RECORD].migration?.backToRunning(token);
  return after(device.reset(), done);
}
