/** What the display drivers offer the rest of uvfio: a screenshot of a device's screen. */
export { screenshotDevice } from './find-display.js';
export type { DisplayPlane } from './plane.js';
