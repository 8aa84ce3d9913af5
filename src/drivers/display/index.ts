/** Pieces the display drivers share: planes, EDIDs, PNG screenshots. */
export { DRM_FORMAT, checkPlane, describePlane, planeToRgb, renderToPng, type DisplayPlane, type PixelFormat } from './plane.js';
export { isDisplaySource, type DisplaySource } from './display-source.js';
export { captureScreen, writeScreenshot, type Screenshot } from './screenshot.js';
export { findDisplay, screenshotDevice } from './find-display.js';
export { buildEdid, isValidEdid, preferredTiming, EDID_BLOCK_SIZE, type EdidOptions, type EdidTiming } from './edid.js';
export { encodePng } from './png.js';
