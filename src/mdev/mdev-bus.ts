/**
 * The mediated-device bus (the kernel's mdev core): parents and their
 * types, the device list, and the create/remove lifecycle.
 *
 * The device list is what makes removal race-free (seed 004). Every UUID
 * the bus holds has one slot, in one of three states: `creating`,
 * `active` (listed), `removing`. All checks and state changes happen in
 * synchronous sections — JavaScript runs them to completion, so each one
 * is a critical section without a lock — and every await sits between two
 * such sections, where any other task may run:
 *
 * - create checks the UUID is free, reserves an instance of its type and
 *   inserts a `creating` slot before its first await, so a duplicate gets
 *   EEXIST and concurrent creates cannot overshoot the type's limit;
 * - remove flips an `active` slot to `removing` before its first await, so
 *   of concurrent removers exactly one wins and the others get ENODEV; a
 *   driver that refuses gets its device put back;
 * - a UUID stays taken until its device is released, so a create of a UUID
 *   being removed gets EEXIST (it does not wait: the caller chooses whether
 *   to retry);
 * - a parent that is unregistering takes no create and no remove (ENODEV);
 *   it waits out the creates and removes in flight (a create in flight
 *   fails with ENODEV instead of registering), then removes what is left,
 *   forcing the driver.
 */
import { EventEmitter } from 'node:events';
import { VfioError, toVfioError } from '../base/errors.js';
import { VfioDevice, type DeviceState } from '../core/device.js';
import type { VfioCore } from '../core/vfio-core.js';
import type { MappedMemory } from '../native/memory.js';
import { MdevDevice } from './mdev-device.js';
import { MdevParent, type MdevParentOptions } from './mdev-parent.js';
import type { MdevType } from './mdev-type.js';
import type { MdevAttrs } from './mdev-driver.js';
import { normalizeUuid } from './uuid.js';

export interface MdevBusOptions {
  /** The core every mediated device registers with. */
  core: VfioCore;
  /**
   * Awaited after a new device is registered, before create resolves: e.g.
   * until the vfio-user server listens on the device's socket. A rejection
   * fails the create, and the device is unregistered again.
   */
  serve?: (device: VfioDevice) => Promise<void>;
}

export interface MdevBusEvents {
  parentRegistered: [parent: MdevParent];
  /** no create or remove is taken for it from now on; its devices are being removed */
  parentUnregistering: [parent: MdevParent];
  /** its devices are gone and so are its types */
  parentUnregistered: [parent: MdevParent];
  /** a device is registered, served and listed */
  created: [mdev: MdevDevice];
  /** a device was unlisted for removal */
  removing: [mdev: MdevDevice];
  /** the driver refused the removal: the device is listed again */
  restored: [mdev: MdevDevice];
  /** the device was released and its instance given back */
  removed: [mdev: MdevDevice];
}

/** How create() is asked, beyond the UUID, type and attributes. */
export interface MdevCreateOptions {
  /** What the driver's probe gets as MdevProbeInfo.barMemory (a daemon takeover). */
  barMemory?: ReadonlyArray<MappedMemory | undefined>;
}

type SlotState = 'creating' | 'active' | 'removing';

/** One UUID the bus holds (the kernel's mdev_list entry). */
interface Slot {
  readonly uuid: string;
  readonly type: MdevType;
  state: SlotState;
  /** set once the device is registered */
  mdev: MdevDevice | null;
  /** the create or remove in flight; settles when the slot leaves `creating`/`removing` */
  busy: Promise<unknown> | null;
}

/** The bus: parents by name, the device list, create and remove (see the file's comment for the races it closes). */
export class MdevBus extends EventEmitter<MdevBusEvents> {
  readonly core: VfioCore;
  private readonly serve: ((device: VfioDevice) => Promise<void>) | undefined;
  private readonly parentsByName = new Map<string, MdevParent>();
  private readonly slots = new Map<string, Slot>();

  constructor(options: MdevBusOptions) {
    super();
    if (!options?.core) throw new VfioError('EINVAL', 'an mdev bus needs a core');
    this.core = options.core;
    this.serve = options.serve;
    this.core.on('unregistering', (device) => this.onCoreUnregistering(device));
  }

  // ---- parents ---------------------------------------------------------------

  /** Registers a parent with its types (mdev_register_parent). EEXIST for a taken name, EINVAL for a bad declaration. */
  registerParent(options: MdevParentOptions): MdevParent {
    if (options === null || typeof options !== 'object') throw new VfioError('EINVAL', 'registerParent needs options');
    if (this.parentsByName.has(options.name)) {
      throw new VfioError('EEXIST', `a parent named ${options.name} is already registered`);
    }
    const parent = new MdevParent(this, options);
    this.parentsByName.set(parent.name, parent);
    this.notify('parentRegistered', parent);
    return parent;
  }

  /**
   * Unregisters a parent (mdev_unregister_parent): stops creates and
   * removes for it at once (ENODEV), waits for those in flight, removes its
   * devices (waiting for their clients, like any remove; the driver cannot
   * refuse), then forgets its types. Calling it again returns the same
   * promise; ENODEV for a parent this bus does not know.
   */
  unregisterParent(parent: MdevParent | string): Promise<void> {
    const p = typeof parent === 'string' ? this.parentsByName.get(parent) : parent;
    if (!p || p.bus !== this || (p.state === 'registered' && this.parentsByName.get(p.name) !== p)) {
      return Promise.reject(new VfioError('ENODEV', `no parent ${typeof parent === 'string' ? parent : parent?.name} on this bus`));
    }
    if (p.unregistering) return p.unregistering;
    p.setState('unregistering');
    p.unregistering = this.drainParent(p);
    this.notify('parentUnregistering', p);
    return p.unregistering;
  }

  /** A registered parent (including one being unregistered) by name. */
  parent(name: string): MdevParent | undefined {
    return this.parentsByName.get(name);
  }

  /** Every registered parent, in registration order. */
  parents(): MdevParent[] {
    return [...this.parentsByName.values()];
  }

  /** Every type of every registered parent. */
  types(): MdevType[] {
    return this.parents().flatMap((p) => [...p.types]);
  }

  /** A type by id, of the named parent or of any parent when omitted (the first one found). */
  type(id: string, parentName?: string): MdevType | undefined {
    if (parentName !== undefined) return this.parentsByName.get(parentName)?.type(id);
    for (const p of this.parentsByName.values()) {
      const t = p.type(id);
      if (t) return t;
    }
    return undefined;
  }

  // ---- devices ---------------------------------------------------------------

  /**
   * Creates a mediated device: reserves an instance, has the parent's
   * driver probe it, registers it with the core and waits until it is
   * served. `type` is a type, or a type id that only one parent has.
   *
   * EINVAL for a malformed UUID or bad attrs (and an id several parents
   * share); ENOENT for an unknown type id; EEXIST for a UUID the bus holds
   * (live, or being created or removed); EUSERS when no instance is left;
   * ENODEV when the parent is going away; the driver's own error otherwise.
   * `options.barMemory` goes to the driver's probe (a daemon takeover).
   */
  create(uuid: string, type: MdevType | string, attrs: MdevAttrs = NO_ATTRS, options: MdevCreateOptions = {}): Promise<MdevDevice> {
    try {
      // Synchronous up to the probe call: checks and reservation cannot interleave.
      const id = normalizeUuid(uuid);
      const t = this.resolveType(type);
      if (t.parent.state !== 'registered') {
        throw new VfioError('ENODEV', `parent ${t.parent.name} is going away`);
      }
      const taken = this.slots.get(id);
      if (taken) {
        const what = taken.state === 'active' ? 'exists' : `is being ${taken.state === 'creating' ? 'created' : 'removed'}`;
        throw new VfioError('EEXIST', `mediated device ${id} ${what}`);
      }
      const frozen = freezeAttrs(attrs);
      t.reserve();
      const slot: Slot = { uuid: id, type: t, state: 'creating', mdev: null, busy: null };
      this.slots.set(id, slot);
      const created = this.probeAndRegister(slot, frozen, options);
      slot.busy = created;
      return created;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Removes a mediated device: unlinks it, asks its driver, unregisters it
   * from the core (clients are asked to let go and waited for) and resolves
   * once it is released and its instance given back. Of concurrent removers
   * exactly one gets past the unlink; the others get ENODEV, as does a UUID
   * not listed (unknown, still being created, already being removed) or
   * one whose parent is going away. EINVAL for a malformed UUID. A driver's
   * refusal rejects with its error, the device listed again.
   */
  remove(uuid: string): Promise<void> {
    try {
      const id = normalizeUuid(uuid);
      const slot = this.slots.get(id);
      if (!slot || slot.state !== 'active') {
        const why = !slot ? 'no such device' : `it is being ${slot.state === 'creating' ? 'created' : 'removed'}`;
        throw new VfioError('ENODEV', `cannot remove mediated device ${id}: ${why}`);
      }
      if (slot.type.parent.state !== 'registered') {
        throw new VfioError('ENODEV', `cannot remove mediated device ${id}: its parent is going away and removes it`);
      }
      return this.startRemove(slot, false);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A listed device by UUID (either case); undefined while it is being created or removed. */
  device(uuid: string): MdevDevice | undefined {
    const slot = this.slots.get(typeof uuid === 'string' ? uuid.toLowerCase() : '');
    return slot?.state === 'active' ? slot.mdev! : undefined;
  }

  /** Every listed device, oldest first. */
  devices(): MdevDevice[] {
    const out: MdevDevice[] = [];
    for (const slot of this.slots.values()) if (slot.state === 'active') out.push(slot.mdev!);
    return out;
  }

  /** UUIDs the bus holds in any state (listed, being created, being removed): for diagnostics and tests. */
  heldUuids(): string[] {
    return [...this.slots.keys()];
  }

  // ---- internals -------------------------------------------------------------

  private resolveType(type: MdevType | string): MdevType {
    if (typeof type === 'string') {
      const found = this.types().filter((t) => t.id === type);
      if (found.length === 0) throw new VfioError('ENOENT', `no mdev type ${JSON.stringify(type)}`);
      if (found.length > 1) {
        throw new VfioError(
          'EINVAL',
          `mdev type ${type} is offered by several parents (${found.map((t) => t.parent.name).join(', ')}); pass the type itself`,
        );
      }
      return found[0]!;
    }
    const parent = type?.parent;
    if (!parent || parent.bus !== this) throw new VfioError('EINVAL', 'that type does not belong to this bus');
    if (this.parentsByName.get(parent.name) !== parent) {
      throw new VfioError('ENODEV', `parent ${parent.name} is gone`);
    }
    return type;
  }

  private async probeAndRegister(slot: Slot, attrs: MdevAttrs, options: MdevCreateOptions): Promise<MdevDevice> {
    const { uuid, type } = slot;
    const parent = type.parent;
    let device: VfioDevice;
    try {
      // Called in the same turn as reserve(): a pool-based driver takes its share here.
      const handedOver = options.barMemory === undefined ? {} : { barMemory: options.barMemory };
      device = await parent.driver.probe({ uuid, type, parent, attrs, core: this.core, ...handedOver });
    } catch (err) {
      this.dropSlot(slot);
      throw toVfioError(err);
    }
    // From here on the device exists, and every way out must free it.
    if (!(device instanceof VfioDevice) || device.name !== uuid || device.core !== this.core || device.state !== 'initialized') {
      if (device instanceof VfioDevice && device.state === 'initialized') releaseUnregistered(device);
      this.dropSlot(slot);
      throw new VfioError('EIO', `${parent.driver.name}: probe must return an unregistered device named ${uuid} on the bus's core`);
    }
    if (parent.state !== 'registered') {
      releaseUnregistered(device);
      this.dropSlot(slot);
      throw new VfioError('ENODEV', `parent ${parent.name} went away while ${uuid} was being created`);
    }
    try {
      // A set and an IOMMU group of its own, as mdevs have. register() throws
      // only before it changed anything (core observers' errors are warnings).
      device.register();
    } catch (err) {
      releaseUnregistered(device);
      this.dropSlot(slot);
      throw toVfioError(err);
    }
    const mdev = new MdevDevice(uuid, type, attrs, device);
    slot.mdev = mdev;
    let failure: VfioError | null = null;
    if (this.serve) {
      try {
        await this.serve(device);
      } catch (err) {
        failure = toVfioError(err);
      }
    }
    if (!failure && parent.state !== 'registered') {
      failure = new VfioError('ENODEV', `parent ${parent.name} went away while ${uuid} was being created`);
    }
    // (await above: the device may have been unregistered meanwhile)
    if (!failure && (device.state as DeviceState) !== 'registered') {
      failure = new VfioError('ENODEV', `${uuid} was unregistered while being created`);
    }
    if (failure) {
      await device.unregister();
      mdev.setState('removed');
      this.dropSlot(slot);
      throw failure;
    }
    slot.state = 'active';
    slot.busy = null;
    this.notify('created', mdev);
    return mdev;
  }

  /** Unlinks an active slot and starts its removal; synchronous up to the driver's remove(). */
  private startRemove(slot: Slot, forced: boolean): Promise<void> {
    const mdev = slot.mdev!;
    slot.state = 'removing';
    mdev.setState('removing');
    const removed = this.finishRemove(slot, mdev, forced);
    slot.busy = removed;
    this.notify('removing', mdev);
    return removed;
  }

  private async finishRemove(slot: Slot, mdev: MdevDevice, forced: boolean): Promise<void> {
    const driver = slot.type.parent.driver;
    if (driver.remove) {
      try {
        await driver.remove(mdev, { forced });
      } catch (err) {
        // A refusal puts the device back, unless it is going away regardless.
        if (!forced && mdev.device.state === 'registered') {
          slot.state = 'active';
          slot.busy = null;
          mdev.setState('active');
          this.notify('restored', mdev);
          throw toVfioError(err);
        }
        process.emitWarning(`mdev ${mdev.uuid}: driver remove failed and was overridden: ${(err as Error).message}`);
      }
    }
    await mdev.device.unregister();
    this.finishRemoved(slot, mdev);
  }

  private finishRemoved(slot: Slot, mdev: MdevDevice): void {
    this.dropSlot(slot);
    mdev.setState('removed');
    this.notify('removed', mdev);
  }

  /** Forgets a slot and gives back its instance. */
  private dropSlot(slot: Slot): void {
    if (this.slots.get(slot.uuid) !== slot) throw new Error(`mdev ${slot.uuid}: slot dropped twice`);
    this.slots.delete(slot.uuid);
    slot.type.unreserve();
  }

  private async drainParent(parent: MdevParent): Promise<void> {
    // Repeat until the parent holds nothing: a refused remove in flight may
    // have put a device back, which the next round then forces out.
    for (;;) {
      const pending: Promise<unknown>[] = [];
      for (const slot of [...this.slots.values()]) {
        if (slot.type.parent !== parent) continue;
        if (slot.state === 'active') pending.push(this.startRemove(slot, true));
        else if (slot.busy) pending.push(slot.busy);
      }
      if (pending.length === 0) break;
      await Promise.allSettled(pending);
    }
    this.parentsByName.delete(parent.name);
    parent.setState('unregistered');
    this.notify('parentUnregistered', parent);
  }

  /**
   * A listed device is being unregistered by someone other than the bus
   * (its driver unplugging it, say): that is a removal all the same.
   */
  private onCoreUnregistering(device: VfioDevice): void {
    const slot = this.slots.get(device.name);
    if (!slot || slot.state !== 'active' || slot.mdev?.device !== device) return;
    const mdev = slot.mdev;
    slot.state = 'removing';
    mdev.setState('removing');
    // The core hands out its unregister promise only after this event returns.
    slot.busy = Promise.resolve()
      .then(() => device.unregister())
      .then(() => this.finishRemoved(slot, mdev));
    this.notify('removing', mdev);
  }

  /** Observers must not break the bus: a throwing listener becomes a warning. */
  private notify<K extends keyof MdevBusEvents>(event: K, ...args: MdevBusEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: MdevBusEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      process.emitWarning(`mdev bus: a '${String(event)}' listener threw: ${(err as Error).message}`);
    }
  }
}

/** A device probed but never registered: free it the way the core would have (vfio_put_device). */
function releaseUnregistered(device: VfioDevice): void {
  try {
    device.release();
  } catch (err) {
    process.emitWarning(`${device.name}: release op threw: ${(err as Error).message}`);
  }
}

const NO_ATTRS: MdevAttrs = Object.freeze({});

function freezeAttrs(attrs: MdevAttrs): MdevAttrs {
  if (attrs === NO_ATTRS) return attrs;
  if (attrs === null || typeof attrs !== 'object' || Array.isArray(attrs)) {
    throw new VfioError('EINVAL', 'mdev attrs must be an object of strings');
  }
  const copy: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v !== 'string') throw new VfioError('EINVAL', `mdev attr ${k} must be a string`);
    copy[k] = v;
  }
  return Object.freeze(copy);
}
