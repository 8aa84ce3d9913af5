/**
 * One screen on one page: the viewer that turns a feed's frames and tiles
 * into WebSocket messages for a canvas.
 *
 * A new frame is announced as JSON (`{"t":"frame","slot",...}`); pixels go
 * as binary messages, each a batch of RGBA tiles:
 *
 *     u8 kind (1)  u8 0  u16 slot  u32 count        little-endian
 *     count × { u16 x, u16 y, u16 w, u16 h, w*h*4 bytes R,G,B,A }
 *
 * One batch is in flight at a time; what changes meanwhile piles up as
 * tile flags and goes in the next batch, so a slow page never makes the
 * daemon queue frames.
 */
import type { WebSocket } from 'ws';
import { PixelConverter, RGBA_FORMAT } from './pixel-format.js';
import type { Frame, ScreenFeed } from './screen-feed.js';
import { TileViewer } from './tile-viewer.js';

export const TILE_BATCH = 1;
const BATCH_HEADER = 8;
const TILE_HEADER = 8;

const rgba = new PixelConverter(RGBA_FORMAT, true);

export class PageScreen extends TileViewer {
  private inFlight = false;
  private readonly unwatch: () => void;
  private done = false;

  constructor(
    private readonly ws: WebSocket,
    readonly uuid: string,
    readonly slot: number,
    feed: ScreenFeed,
    private readonly onEnded: (screen: PageScreen) => void,
  ) {
    super();
    this.unwatch = feed.watch(this);
  }

  protected newFrame(frame: Frame): boolean {
    const { width, height, format, blank } = frame;
    this.sendJson({ t: 'frame', slot: this.slot, uuid: this.uuid, width, height, format, ...(blank === undefined ? {} : { blank }) });
    return true;
  }

  ended(): void {
    if (this.done) return;
    this.done = true;
    this.sendJson({ t: 'ended', slot: this.slot, uuid: this.uuid });
    this.onEnded(this);
  }

  /** The page stopped watching, or went away. */
  stop(): void {
    if (this.done) return;
    this.done = true;
    this.unwatch();
  }

  protected flush(): void {
    if (this.done || this.inFlight || this.frame === undefined || this.damage === undefined || this.damage.empty) return;
    if (this.ws.readyState !== this.ws.OPEN) return;
    const frame = this.frame;
    const rects = this.damage.take().map((i) => frame.grid.rect(i));
    let size = BATCH_HEADER;
    for (const r of rects) size += TILE_HEADER + rgba.sizeOf(r);
    const out = Buffer.allocUnsafe(size);
    out[0] = TILE_BATCH;
    out[1] = 0;
    out.writeUInt16LE(this.slot, 2);
    out.writeUInt32LE(rects.length, 4);
    let at = BATCH_HEADER;
    for (const r of rects) {
      out.writeUInt16LE(r.x, at);
      out.writeUInt16LE(r.y, at + 2);
      out.writeUInt16LE(r.w, at + 4);
      out.writeUInt16LE(r.h, at + 6);
      at = rgba.convert(frame, r, out, at + TILE_HEADER);
    }
    this.inFlight = true;
    this.ws.send(out, { binary: true }, () => {
      this.inFlight = false;
      this.flush();
    });
  }

  private sendJson(message: unknown): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }
}
