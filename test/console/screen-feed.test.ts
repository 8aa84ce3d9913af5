/**
 * The screen feed over real mbochs and mdpy devices: it sees what a guest
 * wrote and programmed, reports only the tiles that changed, follows mode
 * changes, and does nothing at all while nobody watches.
 */
import { strict as assert } from 'node:assert';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScreenFeed, NO_SIGNAL_SIZE, type Frame, type ScreenViewer } from '../../src/console/screen-feed.js';
import { TILE_SIZE } from '../../src/console/tiles.js';
import { until } from '../support/until.js';
import { activeTimers, disable, fillRect, mbochs, mdpy, paintPattern, pattern, setMode } from './helpers.js';

/** A viewer that records what it is told. */
class Recorder implements ScreenViewer {
  frames: Frame[] = [];
  damage: number[][] = [];
  endedCount = 0;
  frameChanged(frame: Frame): void {
    this.frames.push(frame);
  }
  tilesChanged(_frame: Frame, dirty: Uint8Array): void {
    const tiles: number[] = [];
    dirty.forEach((f, i) => f && tiles.push(i));
    this.damage.push(tiles);
  }
  ended(): void {
    this.endedCount++;
  }
}

/** Pixel (x, y) of a frame's copy as [r, g, b]. */
function at(frame: Frame, x: number, y: number): number[] {
  const i = (y * frame.width + x) * 4;
  return [frame.pixels[i + 2]!, frame.pixels[i + 1]!, frame.pixels[i]!];
}

const feeds: ScreenFeed[] = [];
/** A feed closed after its test, whatever happens in it (a watched feed keeps a timer). */
function feedOf(...args: ConstructorParameters<typeof ScreenFeed>): ScreenFeed {
  const feed = new ScreenFeed(...args);
  feeds.push(feed);
  return feed;
}
afterEach(() => {
  for (const f of feeds.splice(0)) f.close();
});

describe('screen feed', () => {
  it('looks at nothing and arms no timer while nobody watches; the last viewer out stops it', async () => {
    const dev = mdpy();
    const baseline = activeTimers();
    const feed = feedOf(dev, { intervalMs: 10 });
    await sleep(60);
    assert.equal(feed.looks, 0, 'no look before the first viewer');
    assert.equal(feed.running, false);
    assert.equal(activeTimers(), baseline, 'no timer of the feed exists');
    assert.equal(feed.frame, undefined, 'no copy of the screen is held');

    const a = new Recorder();
    const b = new Recorder();
    const stopA = feed.watch(a);
    const stopB = feed.watch(b);
    assert.equal(feed.running, true);
    assert.equal(activeTimers(), baseline + 1, 'exactly one timer while watched, however many viewers');
    await until(() => feed.looks >= 4, 'the feed to look while watched');
    stopA();
    assert.equal(feed.running, true, 'still watched by b');
    stopB();
    assert.equal(feed.running, false);
    assert.equal(feed.frame, undefined, 'the copy is dropped');
    const looks = feed.looks;
    await sleep(60);
    assert.equal(feed.looks, looks, 'no look after the last viewer left');
    assert.equal(activeTimers(), baseline, 'no timer is left behind');
    await dev.unregister();
  });

  it('gives a new viewer the frame at once, with what the guest wrote', async () => {
    const dev = mdpy(undefined, 320, 200);
    paintPattern(dev.framebuffer, 320, 200);
    const feed = feedOf(dev);
    const v = new Recorder();
    const stop = feed.watch(v);
    assert.equal(v.frames.length, 1);
    const f = v.frames[0]!;
    assert.deepEqual([f.width, f.height, f.format, f.blank], [320, 200, 'XRGB8888', undefined]);
    for (const [x, y] of [
      [0, 0],
      [319, 0],
      [100, 150],
      [319, 199],
    ] as const)
      assert.deepEqual(at(f, x, y), [...pattern(x, y)], `(${x},${y})`);
    // A second viewer joining later gets the same frame without a new look.
    const looks = feed.looks;
    const late = new Recorder();
    const stopLate = feed.watch(late);
    assert.equal(late.frames[0], f);
    assert.equal(feed.looks, looks);
    stopLate();
    stop();
    await dev.unregister();
  });

  it('reports exactly the tiles a write touched, and takes in the new pixels', async () => {
    const dev = mdpy(undefined, 320, 200);
    const feed = feedOf(dev, { intervalMs: 5 });
    const v = new Recorder();
    const stop = feed.watch(v);
    const cols = Math.ceil(320 / TILE_SIZE);
    // One pixel in tile (1, 0); a rectangle across tiles (3..4, 1..2).
    fillRect(dev.framebuffer, 320 * 4, 70, 10, 1, 1, [255, 0, 0]);
    fillRect(dev.framebuffer, 320 * 4, 200, 100, 80, 60, [0, 0, 255]);
    await until(() => v.damage.length > 0, 'a damage report');
    const tiles = v.damage.flat().sort((a, b) => a - b);
    assert.deepEqual(tiles, [1, cols + 3, cols + 4, 2 * cols + 3, 2 * cols + 4]);
    const frame = feed.frame!;
    assert.deepEqual(at(frame, 70, 10), [255, 0, 0]);
    assert.deepEqual(at(frame, 279, 159), [0, 0, 255]);
    const ramp = Math.floor((160 * 255) / 200);
    assert.deepEqual(at(frame, 279, 160), [ramp, ramp, ramp], "mdpy's ramp below the rectangle");
    // Nothing changes: nothing is reported, however often the feed looks.
    const reports = v.damage.length;
    const looks = feed.looks;
    await until(() => feed.looks >= looks + 5, 'more looks');
    assert.equal(v.damage.length, reports);
    stop();
    await dev.unregister();
  });

  it('follows mode changes, offsets and the picture going away', async () => {
    const dev = mbochs();
    const feed = feedOf(dev, { intervalMs: 5 });
    const v = new Recorder();
    const stop = feed.watch(v);
    const first = v.frames[0]!;
    assert.deepEqual([first.width, first.height], [NO_SIGNAL_SIZE.width, NO_SIGNAL_SIZE.height]);
    assert.match(first.blank!, /not programmed a display mode/);
    assert.ok(
      first.pixels.every((b) => b === 0),
      'no picture is black',
    );

    paintPattern(dev.framebuffer, 800, 600);
    setMode(dev, 800, 600);
    await until(() => v.frames.length === 2, 'the mode');
    const mode = v.frames[1]!;
    assert.deepEqual([mode.width, mode.height, mode.blank], [800, 600, undefined]);
    assert.deepEqual(at(mode, 799, 599), [...pattern(799, 599)]);

    // Panning (bochs's y offset) is a new plane: the frame follows it.
    paintPattern(dev.framebuffer, 800, 100, 600 * 800 * 4, (x, y) => [x & 0xff, y, 0x77]);
    setMode(dev, 800, 600, 600);
    await until(() => v.frames.length === 3, 'the panned mode');
    assert.deepEqual(at(v.frames[2]!, 5, 7), [5, 7, 0x77]);

    disable(dev);
    await until(() => v.frames.length === 4, 'the picture to go');
    const gone = v.frames[3]!;
    assert.match(gone.blank!, /ENABLE is off/);
    assert.deepEqual([gone.width, gone.height], [800, 600], 'a lost picture keeps the last size');
    stop();
    await dev.unregister();
  });

  it('tells its viewers when the device goes, and stops for good', async () => {
    const dev = mdpy();
    const feed = feedOf(dev, { intervalMs: 5 });
    const v = new Recorder();
    feed.watch(v);
    feed.close();
    assert.equal(v.endedCount, 1);
    assert.equal(feed.running, false);
    const late = new Recorder();
    feed.watch(late);
    assert.equal(late.endedCount, 1, 'a viewer of a closed feed is ended at once');
    assert.equal(feed.running, false);
    await dev.unregister();
  });
});
