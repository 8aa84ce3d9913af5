/**
 * What every kind of viewer (a page's canvas, a VNC viewer) does with a
 * feed: keep the current frame and the tiles it has not been sent yet, and
 * try to send whenever there is something new. Only how to send differs.
 */
import type { Frame, ScreenViewer } from './screen-feed.js';
import { Damage } from './tiles.js';

export abstract class TileViewer implements ScreenViewer {
  protected frame: Frame | undefined;
  protected damage: Damage | undefined;

  frameChanged(frame: Frame): void {
    const last = this.frame;
    this.frame = frame;
    if (this.damage === undefined) this.damage = new Damage(frame.grid);
    this.damage.reset(frame.grid);
    if (this.newFrame(frame, last)) this.flush();
  }

  tilesChanged(frame: Frame, dirty: Uint8Array): void {
    void frame;
    this.damage?.add(dirty);
    this.flush();
  }

  abstract ended(): void;

  /** A new frame came (everything is pending); false when the viewer cannot go on. */
  protected abstract newFrame(frame: Frame, last: Frame | undefined): boolean;

  /** Sends what is pending, if the viewer can take it now. */
  protected abstract flush(): void;
}
