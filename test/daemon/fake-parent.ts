/**
 * A minimal mdev driver for the daemon's in-process tests: types `a` and
 * `b` (ids `fake-a`, `fake-b`), each with a fixed number of instances, and
 * devices that do nothing. The spawned-binary tests use the real parents.
 */
import { DeviceFlags, VfioDevice, type DeviceInfo } from '../../src/core/index.js';
import type { MdevDriver, MdevProbeInfo } from '../../src/mdev/index.js';
import type { BuiltinParent } from '../../src/daemon/parents.js';

class FakeDevice extends VfioDevice {
  constructor(info: MdevProbeInfo) {
    super({ name: info.uuid, core: info.core });
  }
  override getInfo(): DeviceInfo {
    return { flags: DeviceFlags.PCI, numRegions: 0, numIrqs: 0 };
  }
}

export function fakeDriver(maxInstances = 2): MdevDriver {
  return {
    name: 'fake',
    types: [
      { name: 'a', prettyName: 'Fake A', description: 'a test type', maxInstances },
      { name: 'b', maxInstances },
    ],
    probe: (info) => new FakeDevice(info),
  };
}

export function fakeParents(): BuiltinParent[] {
  return [{ name: 'fake0', driver: fakeDriver(), defaultType: 'fake-a' }];
}
