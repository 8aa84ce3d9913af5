/**
 * The core device. A driver's device *is* a VfioDevice: it extends this class
 * (the kernel embeds struct vfio_device in its own struct) and overrides the
 * ops below, which therefore always receive the device itself as `this`.
 *
 * Lifecycle: construct (init) → register() → opened by files → unregister()
 * → released. Once unregister() begins, new opens fail with ENODEV at once;
 * files already open keep working; request(count) nudges their holders with
 * back-off; unregister() resolves right after the last file is closed, and
 * release() runs exactly once, after which no op runs again.
 *
 * Ops are called by the core only, through a DeviceFile, under the device
 * set's lock. Drivers never call them on each other, and never count opens.
 */
import { VfioError } from '../base/errors.js';
import type { DeviceInfo, FeatureRequest, IrqInfo, RegionInfo, SetIrqsRequest } from '../base/uapi.js';
import type { MigrationInfo } from './device-migration.js';
import type { DeviceSet } from './device-set.js';
import { RECORD, newDeviceRecord, type DeviceRecord, type DeviceState } from './device-record.js';
import { DeviceFile } from './device-file.js';
import type { VfioGroup } from './group.js';
import type { VfioCore } from './vfio-core.js';
import type { DmaAccess } from '../iommufd/address-space.js';

export type { DeviceState };

/** Options of the constructor (the kernel's vfio_init_group_dev). */
export interface DeviceOptions {
  /** Unique among the core's registered devices (a UUID for mediated devices). */
  name: string;
  /** The core (registry) the device registers with. */
  core: VfioCore;
}

/** Options of register(). */
export interface RegisterOptions {
  /**
   * Devices registered with equal keys (Map semantics) share one device set
   * and its lock; PCI hot reset covers the whole set. Default: a set of its own.
   */
  setKey?: unknown;
  /** IOMMU group number for the legacy group path; default: a new group of its own. */
  iommuGroup?: number;
}

/** Where an mmap-able region's memory lives: region offset X is file offset `offset + X`. */
export interface RegionMmap {
  /** Stays owned by the device; transports send duplicates. */
  fd: number;
  offset: number;
}

export abstract class VfioDevice {
  readonly name: string;
  readonly core: VfioCore;
  /** @internal */
  readonly [RECORD]: DeviceRecord;

  constructor(options: DeviceOptions) {
    if (typeof options.name !== 'string' || options.name.length === 0) {
      throw new VfioError('EINVAL', 'a device needs a non-empty name');
    }
    this.name = options.name;
    this.core = options.core;
    this[RECORD] = newDeviceRecord();
  }

  get state(): DeviceState {
    return this[RECORD].state;
  }
  /** The set this device belongs to while registered. */
  get devSet(): DeviceSet | null {
    return this[RECORD].set;
  }
  /** The legacy IOMMU group this device belongs to while registered. */
  get group(): VfioGroup | null {
    return this[RECORD].group;
  }
  /** How many files have the device open (bound): open_device ran iff this is > 0. */
  get openCount(): number {
    return this[RECORD].openCount;
  }
  /** Files not yet closed, bound or not. */
  get files(): ReadonlySet<DeviceFile> {
    return this[RECORD].files;
  }

  /**
   * Client memory as seen by the earliest bound file still open (for most
   * devices, their only client); null while no file is bound.
   */
  get dma(): DmaAccess | null {
    for (const f of this[RECORD].files) if (f.access) return f.access;
    return null;
  }

  /**
   * True while a daemon takeover saves this device's migration stream (in
   * the daemon handing over) or loads it (in the one taking over); whoever
   * runs the takeover sets it around the save and the load. The next
   * process adopts what the device shares with its clients — the fds of
   * memory they mapped, their interrupt eventfds — instead of copies, so a
   * stream made in this mode leaves shared memory out and carries what the
   * device holds of its clients' interrupt wiring (masks, held signals);
   * see VfioPciDevice.
   */
  get handover(): boolean {
    return this[RECORD].handover;
  }
  set handover(on: boolean) {
    this[RECORD].handover = on;
  }

  /** Makes the device visible: it can be opened from now on. EEXIST for a taken name. */
  register(options: RegisterOptions = {}): void {
    this.core.registerDevice(this, options);
  }

  /**
   * Stops new opens at once, asks holders to let go (request op), and
   * resolves once the last file is closed and release() has run. Calling it
   * again returns the same promise.
   */
  unregister(): Promise<void> {
    return this.core.unregisterDevice(this);
  }

  /**
   * Opens a new file on the device (the cdev path): it takes a registration
   * reference and can do nothing until bound. ENODEV once unregister began.
   */
  openFile(): DeviceFile {
    return new DeviceFile(this, 'cdev', null);
  }

  // ---- ops: override what the device supports ----------------------------

  /** First file bound: bring the device up. A throw leaves it closed. */
  openDevice(): void | Promise<void> {}

  /** Last file closed: quiesce. Cannot fail (errors are reported and ignored). */
  closeDevice(): void | Promise<void> {}

  /** Once, after unregister completed: free what init took. */
  release(): void {}

  /** VFIO_DEVICE_GET_INFO */
  abstract getInfo(): DeviceInfo;

  /** VFIO_DEVICE_GET_REGION_INFO */
  getRegionInfo(index: number): RegionInfo {
    throw new VfioError('EINVAL', `${this.name}: no region ${index}`);
  }

  /** VFIO_DEVICE_GET_IRQ_INFO */
  getIrqInfo(index: number): IrqInfo {
    throw new VfioError('EINVAL', `${this.name}: no irq index ${index}`);
  }

  /** VFIO_DEVICE_SET_IRQS. The device may keep the notifiers; their owner may close them. */
  setIrqs(request: SetIrqsRequest): void | Promise<void> {
    throw new VfioError('EINVAL', `${this.name}: no irq index ${request.index}`);
  }

  /**
   * A daemon takeover: attaches the notifiers (ACTION_TRIGGER, DATA_EVENTFD)
   * a client had attached in the previous process, exactly where they were,
   * with none of the effects SET_IRQS has on the device: its state, enables
   * and masks included, came with its migration stream. The default
   * refuses (ENOTTY): such a device cannot be taken over with interrupts
   * attached.
   */
  adoptIrqs(request: SetIrqsRequest): void {
    throw new VfioError('ENOTTY', `${this.name}: this device cannot adopt interrupts (irq index ${request.index}) in a takeover`);
  }

  /** Reads dest.byteLength bytes of region `index` at `offset` into dest. */
  regionRead(index: number, offset: number, dest: Uint8Array): void | Promise<void> {
    void offset;
    void dest;
    throw new VfioError('EINVAL', `${this.name}: region ${index} cannot be read`);
  }

  /** Writes src to region `index` at `offset`. */
  regionWrite(index: number, offset: number, src: Uint8Array): void | Promise<void> {
    void offset;
    void src;
    throw new VfioError('EINVAL', `${this.name}: region ${index} cannot be written`);
  }

  /**
   * [offset, offset+count) of region `index` as the device's own bytes, when
   * reading it (`write` false) or writing it (`write` true) is a plain copy
   * with no side effect and nothing to check beyond the range: memory like a
   * BAR the client could map. A transport then sends a large read straight
   * from it and receives a large write straight into it, instead of calling
   * regionRead/regionWrite (one copy fewer). Such a write lands as its bytes
   * arrive, over turns of the event loop and outside the set lock, as the
   * client's own stores through a mapping would. null (the default) when
   * the ops must run. Called under the set lock.
   *
   * A view of a whole region (offset 0, count its size) is kept: the
   * vfio-user server asks for one when a client's file is bound and, while
   * it stays bound, answers that client's accesses from it in the
   * native layer, neither calling regionRead/regionWrite nor this again.
   * Give one only for memory that stays the same while a file is bound.
   */
  regionMemory(index: number, offset: number, count: number, write: boolean): Uint8Array | null {
    void index;
    void offset;
    void count;
    void write;
    return null;
  }

  /** Where the mmap-able parts of region `index` live (regions flagged MMAP). */
  mmap(index: number): RegionMmap {
    throw new VfioError('EINVAL', `${this.name}: region ${index} cannot be mmapped`);
  }

  /**
   * What `size` bytes at `offset` of region `index` are, in the driver's
   * words (`port0 LCR`, `COMMAND`), for `uvfio trace`, as a read or (`write`)
   * a write sees them; undefined when they have no name. Called only while
   * someone traces, just after the access: it must read state, never change it.
   */
  describeAccess(index: number, offset: number, size: number, write: boolean): string | undefined {
    void index;
    void offset;
    void size;
    void write;
    return undefined;
  }

  /** How traces name region `index` (`BAR0`, `config` for PCI). */
  regionName(index: number): string {
    return `region${index}`;
  }

  /** How traces name irq index `index` (`INTX`, `MSI` for PCI). */
  irqName(index: number): string {
    return `irq${index}`;
  }

  /** VFIO_DEVICE_RESET, and each device's part of a set-wide hot reset. */
  reset(): void | Promise<void> {
    throw new VfioError('ENOTTY', `${this.name}: this device cannot be reset`);
  }

  /**
   * Unregister is waiting for open files: ask their holders to close them
   * (vfio-pci signals the REQ interrupt). `count` is 0, 1, 2... per nudge.
   * Not under the set lock: it must only signal, never wait.
   */
  request(count: number): void {
    void count;
  }

  /**
   * A bound client is unmapping [iova, iova+length): drop any view of it.
   * Called synchronously and outside the set lock (an unmap cannot wait).
   */
  dmaUnmap(iova: number, length: number): void {
    void iova;
    void length;
  }

  // ---- migration v2: the core owns the states and the data stream ----------

  /**
   * Whether and how the device migrates (VFIO_DEVICE_FEATURE_MIGRATION);
   * null, the default, when it cannot. Asked once, when migration is first
   * used; the answer must not change afterwards.
   */
  migrationInfo(): MigrationInfo | null {
    return null;
  }

  /**
   * Saving: the bytes to append to the device's migration stream. `precopy`
   * when a PRE_COPY session begins (the device still runs: what will not
   * change), `stop-copy` once it is stopped in STOP_COPY (the rest; all of
   * it when `precopied` is false). Each stage runs once per session. A
   * throw fails the arc and puts the device in ERROR. Large state may come
   * as an iterable whose pieces are made as the stream is read (the core
   * pulls one when a read needs it), so no single step copies it all.
   */
  migrationSave(stage: 'precopy' | 'stop-copy', precopied: boolean): Uint8Array | Iterable<Uint8Array> | Promise<Uint8Array> {
    void stage;
    void precopied;
    throw new VfioError('ENOTTY', `${this.name}: this device cannot save its state`);
  }

  /**
   * RESUMING → STOP: the whole stream that was written. Check all of it
   * before changing anything: a VfioError refuses the stream and leaves
   * the device as it was (still RESUMING, the stream discarded); any other
   * throw puts it in ERROR.
   */
  migrationLoad(stream: Uint8Array): void | Promise<void> {
    void stream;
    throw new VfioError('ENOTTY', `${this.name}: this device cannot load a state`);
  }

  /**
   * RESUMING: a first look at the stream being written (its first bytes,
   * up to 4 KiB, after each write until this says yes): true once the start
   * is acceptable, false to see more; a VfioError refuses the stream at
   * once (the write fails, what was written is discarded). The default
   * looks at nothing and leaves the judging to migrationLoad.
   */
  migrationCheckStart(head: Uint8Array): boolean {
    void head;
    return true;
  }

  /**
   * The device stops (into STOP, STOP_COPY or RESUMING): no interrupt, no
   * DMA, no change to its state of its own accord until migrationStart.
   * Region accesses still reach it. A throw puts the device in ERROR.
   */
  migrationStop(): void | Promise<void> {}

  /**
   * The device runs again (back to RUNNING or RUNNING_P2P, or after a
   * reset or the last close of a stopped device): raise what became
   * pending meanwhile or came with a loaded state.
   */
  migrationStart(): void | Promise<void> {}

  /** VFIO_DEVICE_FEATURE: the answer for `get`, nothing for `set`/`probe`. */
  deviceFeature(request: FeatureRequest): Uint8Array | void | Promise<Uint8Array | void> {
    throw new VfioError('ENOTTY', `${this.name}: feature ${request.feature} is not supported`);
  }
}
