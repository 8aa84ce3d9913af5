/**
 * What a display device offers its host: the plane the guest programmed and
 * the memory it scans out of. The screenshot API and command work on any
 * device that has these two.
 */
import type { DisplayPlane } from './plane.js';

/** A device a screenshot can be taken of. */
export interface DisplaySource {
  /**
   * The plane the guest programmed now. Throws a VfioError (ENOENT) while
   * the guest has set no mode, or EINVAL for a mode the device cannot show.
   */
  queryPlane(): DisplayPlane;
  /** The framebuffer memory a plane's offset counts from (shared with the client). */
  readonly framebuffer: Uint8Array;
}

/** True when `value` is a display device (has queryPlane and a framebuffer). */
export function isDisplaySource(value: unknown): value is DisplaySource {
  const v = value as Partial<DisplaySource> | null;
  return typeof v === 'object' && v !== null && typeof v.queryPlane === 'function' && v.framebuffer instanceof Uint8Array;
}
