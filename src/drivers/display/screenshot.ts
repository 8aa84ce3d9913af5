/** The current screen of a display device, as a PNG file. */
import { writeFile } from 'node:fs/promises';
import { ERRNO, VfioError, type ErrnoName } from '../../base/errors.js';
import type { DisplaySource } from './display-source.js';
import { renderToPng, type DisplayPlane } from './plane.js';

export interface Screenshot {
  /** The plane that was captured. */
  plane: DisplayPlane;
  /** The PNG file's bytes. */
  png: Uint8Array;
}

/**
 * Captures what `source` shows now. The plane and the pixels are read in
 * the same turn, so a mode change cannot come between them (a guest may
 * still be drawing: its pixel writes go straight to the shared memory).
 */
export function captureScreen(source: DisplaySource): Screenshot {
  const plane = source.queryPlane();
  return { plane, png: renderToPng(source.framebuffer, plane) };
}

/** Captures `source` and writes the PNG to `path`; returns the plane captured. */
export async function writeScreenshot(source: DisplaySource, path: string): Promise<DisplayPlane> {
  const shot = captureScreen(source);
  try {
    await writeFile(path, shot.png);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const name = typeof code === 'string' && code in ERRNO ? (code as ErrnoName) : 'EIO';
    throw new VfioError(name, `cannot write the screenshot to ${path}: ${(err as Error).message}`, { cause: err });
  }
  return shot.plane;
}
