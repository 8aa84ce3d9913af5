/** Finding the display device a host tool asks for, by name (UUID). */
import type { VfioCore } from '../../core/vfio-core.js';
import { VfioError } from '../../base/errors.js';
import { isDisplaySource, type DisplaySource } from './display-source.js';
import { writeScreenshot } from './screenshot.js';
import type { DisplayPlane } from './plane.js';

/**
 * The registered device called `name` in `core`, if it is a display:
 * ENODEV when there is no such device, ENOTTY when it has no display.
 */
export function findDisplay(core: VfioCore, name: string): DisplaySource {
  const device = core.device(name);
  if (!device) throw new VfioError('ENODEV', `no device ${name} is running`);
  if (!isDisplaySource(device)) throw new VfioError('ENOTTY', `device ${name} has no display to take a screenshot of`);
  return device;
}

/**
 * What a daemon's `screenshot` operation does: writes the current screen of
 * device `name` to `path` (a PNG) and returns the plane captured. ENOENT
 * while the guest has programmed no mode.
 */
export function screenshotDevice(core: VfioCore, name: string, path: string): Promise<DisplayPlane> {
  return writeScreenshot(findDisplay(core, name), path);
}
