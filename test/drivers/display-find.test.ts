import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceFlags, VfioDevice, type DeviceInfo } from '../../src/core/index.js';
import { findDisplay, screenshotDevice } from '../../src/drivers/display/find-display.js';
import { MdpyDevice } from '../../src/drivers/mdpy/index.js';
import { fastCore, isCode } from './display-device-helpers.js';
import { decodePng } from './display-png-decode.js';

class Plain extends VfioDevice {
  override getInfo(): DeviceInfo {
    return { flags: DeviceFlags.PCI, numRegions: 0, numIrqs: 0 };
  }
}

test('find display: ENODEV for no such device, ENOTTY for a device without a display', async () => {
  const core = fastCore();
  const plain = new Plain({ name: 'plain', core });
  plain.register();
  assert.throws(() => findDisplay(core, 'nobody'), isCode('ENODEV'));
  assert.throws(() => findDisplay(core, 'plain'), isCode('ENOTTY'));
  await plain.unregister();
});

test('find display: screenshotDevice writes the PNG of a registered display', async () => {
  const core = fastCore();
  const dev = new MdpyDevice({ name: 'screen', core, width: 640, height: 480 });
  dev.register();
  const dir = await mkdtemp(join(tmpdir(), 'uvfio-find-'));
  try {
    const plane = await screenshotDevice(core, 'screen', join(dir, 's.png'));
    assert.equal(plane.width, 640);
    const png = decodePng(await readFile(join(dir, 's.png')));
    assert.deepEqual([png.width, png.height], [640, 480]);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await dev.unregister();
  }
});
