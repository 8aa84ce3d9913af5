/**
 * A screen cut into square tiles: the unit in which the console notices
 * change and sends pixels. 64 pixels a side keeps the per-tile bookkeeping
 * small (192 tiles at 1024x768) while a blinking cursor still costs one
 * small tile, not a frame.
 */

/** Pixels on a tile's side (the last column and row may be narrower). */
export const TILE_SIZE = 64;

/** A rectangle of pixels. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The tiles of a `width` x `height` screen, numbered row by row. */
export class TileGrid {
  readonly cols: number;
  readonly rows: number;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.cols = Math.ceil(width / TILE_SIZE);
    this.rows = Math.ceil(height / TILE_SIZE);
  }

  /** Number of tiles. */
  get count(): number {
    return this.cols * this.rows;
  }

  /** The pixels of tile `index`. */
  rect(index: number): Rect {
    const x = (index % this.cols) * TILE_SIZE;
    const y = Math.floor(index / this.cols) * TILE_SIZE;
    return { x, y, w: Math.min(TILE_SIZE, this.width - x), h: Math.min(TILE_SIZE, this.height - y) };
  }

  /** Sets the flag of every tile that `r` touches (clipped to the screen). */
  markRect(flags: Uint8Array, r: Rect): void {
    const x0 = Math.max(0, r.x);
    const y0 = Math.max(0, r.y);
    const x1 = Math.min(this.width, r.x + r.w);
    const y1 = Math.min(this.height, r.y + r.h);
    if (x1 <= x0 || y1 <= y0) return;
    for (let ty = Math.floor(y0 / TILE_SIZE); ty <= Math.floor((y1 - 1) / TILE_SIZE); ty++) {
      for (let tx = Math.floor(x0 / TILE_SIZE); tx <= Math.floor((x1 - 1) / TILE_SIZE); tx++) flags[ty * this.cols + tx] = 1;
    }
  }
}

/**
 * What one viewer has not been sent yet: a flag per tile. Changes pile up
 * here while the viewer cannot take more (a slow socket), so a slow viewer
 * costs one byte per tile, never a queue of frames.
 */
export class Damage {
  private flags: Uint8Array;
  private marked = 0;

  constructor(private grid: TileGrid) {
    this.flags = new Uint8Array(grid.count);
  }

  /** Starts over on a new grid with every tile pending. */
  reset(grid: TileGrid): void {
    this.grid = grid;
    this.flags = new Uint8Array(grid.count);
    this.markAll();
  }

  markAll(): void {
    this.flags.fill(1);
    this.marked = this.flags.length;
  }

  /** Adds the tiles flagged in `dirty` (one byte per tile of the same grid). */
  add(dirty: Uint8Array): void {
    for (let i = 0; i < this.flags.length; i++) {
      if (dirty[i] && !this.flags[i]) {
        this.flags[i] = 1;
        this.marked++;
      }
    }
  }

  /** Adds the tiles `r` touches. */
  addRect(r: Rect): void {
    this.grid.markRect(this.flags, r);
    this.marked = this.flags.reduce((n, f) => n + f, 0);
  }

  /** True when nothing is pending. */
  get empty(): boolean {
    return this.marked === 0;
  }

  /** The pending tiles' indexes, which are no longer pending. */
  take(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.flags.length; i++) if (this.flags[i]) out.push(i);
    this.flags.fill(0);
    this.marked = 0;
    return out;
  }
}
