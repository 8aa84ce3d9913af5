/**
 * The registry of one uvfio instance: registered devices by name, device sets
 * by key, IOMMU groups by number (the kernel keeps these as globals). It also
 * runs the register/unregister sequence, and tells observers (the vfio-user
 * server, the mdev bus) about it through events.
 */
import { EventEmitter } from 'node:events';
import { VfioError } from '../base/errors.js';
import { DeviceSet } from './device-set.js';
import type { RegisterOptions, VfioDevice } from './device.js';
import type { DeviceFile } from './device-file.js';
import { RECORD } from './device-record.js';
import { VfioGroup } from './group.js';

export interface VfioCoreOptions {
  /** Milliseconds to wait after request(count) before asking again. Default 100·2^count, at most 10 s. */
  requestBackoffMs?: (count: number) => number;
  /**
   * How to wait `ms` (or until `wake` resolves, whichever is first). Tests
   * with a deterministic scheduler replace the timer with their own step.
   */
  wait?: (ms: number, wake: Promise<void>) => Promise<void>;
}

export interface VfioCoreEvents {
  /** a device was registered and can be opened */
  registered: [device: VfioDevice];
  /** unregister began: no new opens from now on */
  unregistering: [device: VfioDevice];
  /** the last file closed and release() ran */
  released: [device: VfioDevice];
}

function timerWait(ms: number, wake: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    void wake.then(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

export class VfioCore extends EventEmitter<VfioCoreEvents> {
  private readonly byName = new Map<string, VfioDevice>();
  private readonly sets = new Map<unknown, DeviceSet>();
  private readonly groups = new Map<number, VfioGroup>();
  private nextGroupId = 0;
  private readonly backoff: (count: number) => number;
  private readonly wait: (ms: number, wake: Promise<void>) => Promise<void>;

  constructor(options: VfioCoreOptions = {}) {
    super();
    this.backoff = options.requestBackoffMs ?? ((n) => Math.min(100 * 2 ** n, 10_000));
    this.wait = options.wait ?? timerWait;
  }

  /** A registered device (including one being unregistered) by name. */
  device(name: string): VfioDevice | undefined {
    return this.byName.get(name);
  }

  /** Every registered device. */
  devices(): VfioDevice[] {
    return [...this.byName.values()];
  }

  /** The set of a key, if any device has it. */
  deviceSet(key: unknown): DeviceSet | undefined {
    return this.sets.get(key);
  }

  /** Number of live device sets. */
  get setCount(): number {
    return this.sets.size;
  }

  /** An IOMMU group by number, created on first use. */
  group(id: number): VfioGroup {
    let g = this.groups.get(id);
    if (!g) {
      if (!Number.isSafeInteger(id) || id < 0) throw new VfioError('EINVAL', `group ${id} is not a valid number`);
      g = new VfioGroup(this, id);
      this.groups.set(id, g);
      if (id >= this.nextGroupId) this.nextGroupId = id + 1;
    }
    return g;
  }

  /** Every known group. */
  allGroups(): VfioGroup[] {
    return [...this.groups.values()];
  }

  /** Opens a file on a registered device by name (the cdev path). ENODEV when there is none. */
  openFile(name: string): DeviceFile {
    const device = this.byName.get(name);
    if (!device) throw new VfioError('ENODEV', `no device named ${name}`);
    return device.openFile();
  }

  /** @internal VfioDevice.register() */
  registerDevice(device: VfioDevice, options: RegisterOptions): void {
    const rec = device[RECORD];
    if (device.core !== this) throw new VfioError('EINVAL', `${device.name}: belongs to another core`);
    if (rec.state !== 'initialized') {
      throw new VfioError('EINVAL', `${device.name}: cannot register a device that is ${rec.state}`);
    }
    if (this.byName.has(device.name)) {
      throw new VfioError('EEXIST', `a device named ${device.name} is already registered`);
    }
    const key = options.setKey === undefined ? device : options.setKey;
    const groupId = options.iommuGroup ?? this.nextGroupId;
    const group = this.group(groupId); // validates the number before anything changes
    let set = this.sets.get(key);
    if (!set) {
      set = new DeviceSet(key);
      this.sets.set(key, set);
    }
    set.devices.add(device);
    group.addDevice(device);
    rec.set = set;
    rec.group = group;
    rec.refs = 1;
    rec.state = 'registered';
    this.byName.set(device.name, device);
    this.notify('registered', device);
  }

  /** @internal VfioDevice.unregister() */
  unregisterDevice(device: VfioDevice): Promise<void> {
    const rec = device[RECORD];
    if (rec.unregistering) return rec.unregistering;
    if (rec.state !== 'registered') {
      return Promise.reject(new VfioError('EINVAL', `${device.name}: cannot unregister a device that is ${rec.state}`));
    }
    rec.state = 'unregistering';
    const drained = new Promise<void>((resolve) => {
      rec.drained = resolve;
    });
    // The promise exists before observers hear of it, so an observer that
    // calls unregister() itself gets this same promise back.
    let finish!: { resolve: () => void; reject: (err: unknown) => void };
    rec.unregistering = new Promise<void>((resolve, reject) => {
      finish = { resolve, reject };
    });
    this.notify('unregistering', device);
    this.drainAndRelease(device, drained).then(finish.resolve, finish.reject);
    return rec.unregistering;
  }

  // Observers' bugs are theirs: a throwing listener must not leave the core
  // half-way through a transition (registered, yet reported as failed).
  private notify(event: keyof VfioCoreEvents, device: VfioDevice): void {
    try {
      this.emit(event, device);
    } catch (err) {
      process.emitWarning(`uvfio core: a '${event}' listener threw: ${(err as Error).message}`);
    }
  }

  /** @internal a file gave back its registration reference */
  putRegistration(device: VfioDevice): void {
    const rec = device[RECORD];
    if (rec.refs <= 0) throw new Error(`${device.name}: registration reference underflow`);
    rec.refs--;
    if (rec.refs === 0) rec.drained();
  }

  private async drainAndRelease(device: VfioDevice, drained: Promise<void>): Promise<void> {
    const rec = device[RECORD];
    let done = false;
    void drained.then(() => {
      done = true;
    });
    this.putRegistration(device); // the registration's own reference
    // vfio_unregister_group_dev: nudge holders with back-off until all are gone.
    for (let count = 0; !done && rec.refs > 0; count++) {
      try {
        device.request(count);
      } catch (err) {
        process.emitWarning(`${device.name}: request op threw: ${(err as Error).message}`);
      }
      await this.wait(this.backoff(count), drained);
    }
    await drained;
    // Under the set lock: a set-wide op (hot reset) in flight must never see
    // a device vanish mid-way, nor run an op on it after release().
    const set = rec.set!;
    await set.lock.runAsync(() => {
      set.devices.delete(device);
      if (set.devices.size === 0) this.sets.delete(set.key);
      const group = rec.group!;
      group.removeDevice(device);
      if (group.isEmpty) this.groups.delete(group.id);
      this.byName.delete(device.name);
      rec.set = null;
      rec.group = null;
      rec.state = 'released';
      try {
        device.release();
      } catch (err) {
        process.emitWarning(`${device.name}: release op threw: ${(err as Error).message}`);
      }
    });
    this.notify('released', device);
  }
}
