/**
 * An instrumented driver for core tests: it records every op, checks the
 * invariants a driver is promised (open_device only when closed, nothing
 * after release, nothing overlapping in its set), and can park inside its
 * ops at scheduler points so other tasks interleave there.
 */
import { DeviceFlags, RegionFlags, VfioDevice, VfioError, type DeviceInfo, type RegionInfo } from '../../src/core/index.js';
import type { DeviceOptions } from '../../src/core/device.js';

/** Shared by the devices of one set: who is inside an op right now. */
export class SetMonitor {
  active = 0;
  violations: string[] = [];
  enter(what: string): void {
    if (this.active !== 0) this.violations.push(`${what} overlapped another op of its set`);
    this.active++;
  }
  leave(): void {
    this.active--;
  }
}

export interface TestDeviceOptions extends DeviceOptions {
  /** where ops park; none = ops are synchronous */
  point?: (label: string) => Promise<void>;
  monitor?: SetMonitor;
  /** makes the next open_device fail with this code */
  failOpen?: () => boolean;
}

export class TestDevice extends VfioDevice {
  readonly calls: string[] = [];
  opens = 0;
  closes = 0;
  resets = 0;
  requests: number[] = [];
  releases = 0;
  isOpen = false;
  released = false;
  readonly violations: string[] = [];
  readonly regs = new Uint8Array(64);
  private readonly point?: (label: string) => Promise<void>;
  private readonly monitor: SetMonitor;
  private readonly failOpen?: () => boolean;

  constructor(options: TestDeviceOptions) {
    super(options);
    this.point = options.point;
    this.monitor = options.monitor ?? new SetMonitor();
    this.failOpen = options.failOpen;
  }

  private check(op: string): void {
    if (this.calls.length < 1000) this.calls.push(op); // a bounded log for assertions
    if (this.released) this.violations.push(`${op} ran after release`);
  }

  // Runs body with the set monitor held; parks at a point when async.
  protected guarded<T>(op: string, body: () => T): T | Promise<T> {
    this.check(op);
    this.monitor.enter(`${this.name}.${op}`);
    if (!this.point) {
      try {
        return body();
      } finally {
        this.monitor.leave();
      }
    }
    return this.point(`${this.name}.${op}`).then(
      () => {
        try {
          return body();
        } finally {
          this.monitor.leave();
        }
      },
      (err) => {
        this.monitor.leave();
        throw err;
      },
    );
  }

  override openDevice(): void | Promise<void> {
    return this.guarded('open', () => {
      if (this.isOpen) this.violations.push('open_device while already open');
      if (this.failOpen?.()) throw new VfioError('EIO', `${this.name}: open_device failed on purpose`);
      this.isOpen = true;
      this.opens++;
    });
  }

  override closeDevice(): void | Promise<void> {
    return this.guarded('close', () => {
      if (!this.isOpen) this.violations.push('close_device while not open');
      this.isOpen = false;
      this.closes++;
    });
  }

  override release(): void {
    this.check('release');
    this.releases++;
    this.released = true;
    if (this.isOpen) this.violations.push('released while open');
  }

  override getInfo(): DeviceInfo {
    this.check('getInfo');
    return { flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: 1, numIrqs: 0 };
  }

  override getRegionInfo(index: number): RegionInfo {
    this.check('getRegionInfo');
    if (index !== 0) throw new VfioError('EINVAL', `no region ${index}`);
    return { index, flags: RegionFlags.READ | RegionFlags.WRITE, size: this.regs.length };
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void | Promise<void> {
    return this.guarded('read', () => {
      if (index !== 0 || offset + dest.length > this.regs.length) throw new VfioError('EINVAL', 'out of range');
      dest.set(this.regs.subarray(offset, offset + dest.length));
    });
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void | Promise<void> {
    return this.guarded('write', () => {
      if (index !== 0 || offset + src.length > this.regs.length) throw new VfioError('EINVAL', 'out of range');
      this.regs.set(src, offset);
    });
  }

  override reset(): void | Promise<void> {
    return this.guarded('reset', () => {
      this.regs.fill(0);
      this.resets++;
    });
  }

  override request(count: number): void {
    this.check('request');
    this.requests.push(count);
  }
}
