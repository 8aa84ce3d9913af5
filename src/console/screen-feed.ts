/**
 * The live picture of one display device, for whoever watches it: the web
 * console's canvases and VNC viewers.
 *
 * A guest's pixel writes land in shared memory without a message, so change
 * can only be seen by looking. While at least one viewer watches, the feed
 * looks a few times a second: it asks the device for its plane (a mode
 * change is a new frame) and compares the visible pixels with its copy of
 * the last frame, line by line (memcmp) and, in the lines that differ, tile
 * by tile; the tiles that changed are copied and announced. With no viewer
 * there is no timer, no copy and no work at all.
 */
import { isVfioError } from '../base/errors.js';
import type { DisplaySource } from '../drivers/display/display-source.js';
import { checkPlane, type DisplayPlane, type PixelFormat } from '../drivers/display/plane.js';
import { TILE_SIZE, TileGrid } from './tiles.js';

/** Size of the black picture shown before a guest ever set a mode. */
export const NO_SIGNAL_SIZE = { width: 640, height: 480 } as const;

/** What viewers read: the last frame seen, packed. */
export interface Frame {
  readonly width: number;
  readonly height: number;
  readonly grid: TileGrid;
  /** Pixel format of `pixels` (the plane's; XRGB8888 while blank). */
  readonly format: PixelFormat;
  /** The plane shown, or undefined while there is no picture. */
  readonly plane: DisplayPlane | undefined;
  /** Why there is no picture (no mode set, a mode the device cannot show). */
  readonly blank: string | undefined;
  /** width * height pixels, 4 bytes each, rows packed; all zero while blank. */
  readonly pixels: Buffer;
}

/** One watcher of a feed. Calls come in the feed's turn: read `frame` then, keep nothing of `dirty`. */
export interface ScreenViewer {
  /** A new frame (the first, a mode change, picture lost or back): all of it is new. */
  frameChanged(frame: Frame): void;
  /** Tiles of the current frame changed: `dirty` has one flag byte per tile. */
  tilesChanged(frame: Frame, dirty: Uint8Array): void;
  /** The device went away; the viewer is dropped. */
  ended(): void;
}

export interface ScreenFeedOptions {
  /** Milliseconds between looks while watched. Default 100 (10 frames a second). */
  intervalMs?: number;
}

export class ScreenFeed {
  private readonly viewers = new Set<ScreenViewer>();
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private current: Frame | undefined;
  private dirty = new Uint8Array(0);
  private closed = false;
  #looks = 0;

  constructor(
    readonly source: DisplaySource,
    options: ScreenFeedOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 100;
  }

  /** The last frame seen; undefined while nobody watches. */
  get frame(): Frame | undefined {
    return this.current;
  }

  /** How many times the feed has looked at the device (for tests: it must stand still unwatched). */
  get looks(): number {
    return this.#looks;
  }

  /** True while the feed's timer is armed: exactly while someone watches. */
  get running(): boolean {
    return this.timer !== undefined;
  }

  get watchers(): number {
    return this.viewers.size;
  }

  /**
   * Adds a viewer, which is told the current frame at once (the first
   * viewer makes the feed look right now). Returns the unsubscribe
   * function; the last one out stops the timer and drops the copy.
   */
  watch(viewer: ScreenViewer): () => void {
    if (this.closed) {
      viewer.ended();
      return () => {};
    }
    this.viewers.add(viewer);
    if (this.current === undefined) this.look();
    else viewer.frameChanged(this.current);
    this.timer ??= setTimeout(this.onTimer, this.intervalMs);
    return () => this.unwatch(viewer);
  }

  /** Looks now, out of turn (a VNC viewer asking for a full frame wants it fresh). */
  refresh(): void {
    if (this.viewers.size > 0) this.look();
  }

  /** The device is going away: every viewer is told, and the feed stops for good. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const viewers = [...this.viewers];
    this.viewers.clear();
    this.stop();
    for (const v of viewers) v.ended();
  }

  private unwatch(viewer: ScreenViewer): void {
    if (!this.viewers.delete(viewer) || this.viewers.size > 0) return;
    this.stop();
  }

  private stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = undefined;
    this.dirty = new Uint8Array(0);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.viewers.size === 0) return;
    this.look();
    // A viewer may have left (or the device gone) while it was told.
    if (this.viewers.size > 0 && !this.closed) this.timer = setTimeout(this.onTimer, this.intervalMs);
  };

  private look(): void {
    this.#looks++;
    const fb = this.source.framebuffer;
    let plane: DisplayPlane | undefined;
    let blank: string | undefined;
    try {
      plane = this.source.queryPlane();
      checkPlane(plane, fb.length);
    } catch (err) {
      plane = undefined;
      blank = isVfioError(err) ? err.message : String(err);
    }
    const last = this.current;
    if (last === undefined || !sameMode(last, plane, blank)) {
      this.current = newFrame(fb, plane, blank, last);
      this.dirty = new Uint8Array(this.current.grid.count);
      for (const v of [...this.viewers]) v.frameChanged(this.current);
      return;
    }
    if (plane === undefined) return;
    if (this.diff(fb, plane, last)) {
      for (const v of [...this.viewers]) v.tilesChanged(last, this.dirty);
    }
  }

  /**
   * Compares the visible pixels with the frame's copy, takes in what
   * changed and flags its tiles in `this.dirty`. True when anything did.
   */
  private diff(fb: Uint8Array, plane: DisplayPlane, frame: Frame): boolean {
    const src = Buffer.from(fb.buffer, fb.byteOffset, fb.byteLength);
    const copy = frame.pixels;
    const line = frame.width * 4;
    const tileBytes = TILE_SIZE * 4;
    const { cols } = frame.grid;
    const dirty = this.dirty;
    dirty.fill(0);
    let any = false;
    for (let y = 0; y < frame.height; y++) {
      const from = plane.offset + y * plane.stride;
      const to = y * line;
      if (src.compare(copy, to, to + line, from, from + line) === 0) continue;
      const row = Math.floor(y / TILE_SIZE) * cols;
      for (let tx = 0, at = 0; at < line; tx++, at += tileBytes) {
        const n = Math.min(tileBytes, line - at);
        if (src.compare(copy, to + at, to + at + n, from + at, from + at + n) === 0) continue;
        src.copy(copy, to + at, from + at, from + at + n);
        dirty[row + tx] = 1;
        any = true;
      }
    }
    return any;
  }
}

function sameMode(frame: Frame, plane: DisplayPlane | undefined, blank: string | undefined): boolean {
  const p = frame.plane;
  if (plane === undefined || p === undefined) return plane === p && blank === frame.blank;
  return p.format === plane.format && p.width === plane.width && p.height === plane.height && p.stride === plane.stride && p.offset === plane.offset;
}

/**
 * A frame for `plane` with its pixels copied; while blank, a black one of
 * the last frame's size (a VNC viewer keeps its window).
 */
function newFrame(fb: Uint8Array, plane: DisplayPlane | undefined, blank: string | undefined, last: Frame | undefined): Frame {
  const width = plane?.width ?? last?.width ?? NO_SIGNAL_SIZE.width;
  const height = plane?.height ?? last?.height ?? NO_SIGNAL_SIZE.height;
  const pixels = Buffer.alloc(width * height * 4);
  if (plane !== undefined) {
    const src = Buffer.from(fb.buffer, fb.byteOffset, fb.byteLength);
    for (let y = 0; y < height; y++) {
      const from = plane.offset + y * plane.stride;
      src.copy(pixels, y * width * 4, from, from + width * 4);
    }
  }
  return { width, height, grid: new TileGrid(width, height), format: plane?.format ?? 'XRGB8888', plane, blank, pixels };
}
