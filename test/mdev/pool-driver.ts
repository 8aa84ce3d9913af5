/**
 * A small mdev driver for the bus tests, shaped like mtty: types `1` and
 * `2` take one or two ports from a shared pool (pool mode), or each type
 * has a fixed maxInstances counted by the bus (counted mode). It records
 * what the bus promises a driver — every probed device released exactly
 * once, nothing released while open — and can park at scheduler points,
 * fail probes, refuse removals, and tell "clients" to let go on request.
 */
import {
  DeviceFlags,
  IrqInfoFlags,
  PciIrq,
  RegionFlags,
  VfioDevice,
  VfioError,
  type DeviceInfo,
  type EventNotifier,
  type IrqInfo,
  type RegionInfo,
  type SetIrqsRequest,
} from '../../src/core/index.js';
import {
  SharedPool,
  type MdevDevice,
  type MdevDriver,
  type MdevProbeInfo,
  type MdevRemoveOptions,
  type MdevType,
  type MdevTypeSpec,
  type PoolShare,
} from '../../src/mdev/index.js';

export interface PoolDriverOptions {
  /** driver name, the type id prefix; default 'tpool' */
  name?: string;
  /** ports in the shared pool; omit for counted mode */
  ports?: number;
  /** maxInstances of each type in counted mode; default 4 */
  maxInstances?: number;
  /** where probe and remove park (another task may run there); default: no parking */
  point?: (label: string) => Promise<void>;
  /** fails this probe (after the pool share was taken) with the returned error */
  failProbe?: (info: MdevProbeInfo) => VfioError | null;
  /** refuses this removal with EBUSY */
  refuse?: (mdev: MdevDevice, options: MdevRemoveOptions) => boolean;
}

export class PoolDevice extends VfioDevice {
  releases = 0;
  opens = 0;
  isOpen = false;
  readonly regs = new Uint8Array(8);
  /** told of every request(count): a test's "clients" close their files there */
  readonly requestListeners = new Set<(count: number) => void>();
  requests = 0;
  /** what a client set on the REQ irq index, as vfio-pci clients do */
  private reqNotifier: EventNotifier | null = null;

  constructor(
    info: MdevProbeInfo,
    /** the pool share it holds (pool mode) */
    private readonly share: PoolShare | null,
    private readonly driver: PoolDriver,
  ) {
    super({ name: info.uuid, core: info.core });
  }

  /** Records a broken promise of the bus or the core, on the driver's log. */
  private violation(what: string): void {
    this.driver.violationLog.push(`${this.name}: ${what}`);
  }

  override openDevice(): void {
    if (this.releases) this.violation('open after release');
    this.isOpen = true;
    this.opens++;
  }

  override release(): void {
    this.releases++;
    if (this.releases > 1) this.violation('released twice');
    if (this.isOpen) this.violation('released while open');
    this.driver.live.delete(this);
    this.share?.give();
  }

  /** Ports it holds: 0 in counted mode. */
  get ports(): number {
    return this.share?.units ?? 0;
  }

  override getInfo(): DeviceInfo {
    if (this.releases) this.violation('op after release');
    return { flags: DeviceFlags.PCI, numRegions: 1, numIrqs: PciIrq.REQ + 1 };
  }

  override getIrqInfo(index: number): IrqInfo {
    if (index !== PciIrq.REQ) return { index, flags: 0, count: 0 };
    return { index, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.NORESIZE, count: 1 };
  }

  /** Only the REQ index, only eventfd triggers: what a client needs to be asked to let go. */
  override setIrqs(request: SetIrqsRequest): void {
    if (request.index !== PciIrq.REQ || request.action !== 'trigger' || request.data !== 'eventfd') {
      throw new VfioError('EINVAL', `${this.name}: only the REQ eventfd can be set`);
    }
    this.reqNotifier = request.values[0] ?? null;
  }

  override closeDevice(): void {
    this.isOpen = false;
    this.reqNotifier = null;
  }

  override getRegionInfo(index: number): RegionInfo {
    if (index !== 0) throw new VfioError('EINVAL', `no region ${index}`);
    return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: this.regs.length };
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void {
    if (this.releases) this.violation('op after release');
    if (index !== 0 || offset + dest.length > this.regs.length) throw new VfioError('EINVAL', 'out of range');
    dest.set(this.regs.subarray(offset, offset + dest.length));
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void {
    if (this.releases) this.violation('op after release');
    if (index !== 0 || offset + src.length > this.regs.length) throw new VfioError('EINVAL', 'out of range');
    this.regs.set(src, offset);
  }

  override request(count: number): void {
    this.requests++;
    for (const listener of this.requestListeners) listener(count);
    if (this.reqNotifier && !this.reqNotifier.closed) this.reqNotifier.signal();
  }
}

export class PoolDriver implements MdevDriver {
  readonly name: string;
  readonly types: readonly MdevTypeSpec[];
  /** every device probe returned, in order */
  readonly probed: PoolDevice[] = [];
  /** devices built by a probe still in flight */
  readonly probing = new Set<PoolDevice>();
  /** devices built and not yet released */
  readonly live = new Set<PoolDevice>();
  /** what any device saw go wrong */
  readonly violationLog: string[] = [];
  /** the shared ports (pool mode) */
  readonly pool: SharedPool | undefined;
  removeCalls = 0;
  readonly availableInstances?: (type: MdevType) => number;

  constructor(private readonly options: PoolDriverOptions = {}) {
    this.name = options.name ?? 'tpool';
    this.pool = options.ports === undefined ? undefined : new SharedPool({ name: 'test ports', size: options.ports });
    const pooled = this.pool !== undefined;
    const max = pooled ? undefined : (options.maxInstances ?? 4);
    this.types = [
      { name: '1', prettyName: 'Single port', description: 'one port', maxInstances: max },
      { name: '2', prettyName: 'Dual port', description: 'two ports', maxInstances: max },
    ];
    if (pooled) this.availableInstances = (type) => this.pool!.available(portsOf(type));
  }

  probe(info: MdevProbeInfo): Promise<VfioDevice> {
    // The pool share is taken before the first await, as the bus requires.
    let share: PoolShare | null;
    try {
      share = this.pool?.take(portsOf(info.type), info.type.id) ?? null;
    } catch (err) {
      return Promise.reject(err);
    }
    const device = new PoolDevice(info, share, this);
    this.probing.add(device);
    this.live.add(device);
    return this.park(`probe ${info.uuid}`).then(() => {
      this.probing.delete(device);
      const err = this.options.failProbe?.(info);
      if (err) {
        device.release(); // a failed probe frees what it took, itself
        throw err;
      }
      this.probed.push(device);
      return device;
    });
  }

  async remove(mdev: MdevDevice, options: MdevRemoveOptions): Promise<void> {
    this.removeCalls++;
    await this.park(`remove ${mdev.uuid}`);
    if (this.options.refuse?.(mdev, options)) throw new VfioError('EBUSY', `${mdev.uuid} is busy`);
  }

  /** Ports no device holds (0 in counted mode). */
  get freePortCount(): number {
    return this.pool?.free ?? 0;
  }

  /**
   * Ports held by devices not yet released (probed or being probed): with
   * the free ones they must make the whole pool, at every moment.
   */
  heldPorts(): number {
    let n = 0;
    for (const d of this.live) n += d.ports;
    return n;
  }

  /** Every violation any probed device recorded. */
  violations(): string[] {
    return this.violationLog;
  }

  private park(label: string): Promise<void> {
    return this.options.point ? this.options.point(label) : Promise.resolve();
  }
}

/** Type `1` takes one port, type `2` two. */
export function portsOf(type: MdevType): number {
  return type.id.endsWith('-2') ? 2 : 1;
}
