/** Tiles, damage, and the conversion of a frame's pixels into the formats viewers ask for. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { PixelConverter, RGBA_FORMAT, XRGB8888_FORMAT, checkPixelFormat, type PixelFormat } from '../../src/console/pixel-format.js';
import type { Frame } from '../../src/console/screen-feed.js';
import { Damage, TILE_SIZE, TileGrid } from '../../src/console/tiles.js';
import type { PixelFormat as PlaneFormat } from '../../src/drivers/display/plane.js';

/** A frame of `w` x `h` whose pixel (x, y) is colour `c(x, y)`, stored in `format`. */
function frameOf(w: number, h: number, format: PlaneFormat, c: (x: number, y: number) => [number, number, number]): Frame {
  const pixels = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, b] = c(x, y);
      const i = (y * w + x) * 4;
      if (format === 'XRGB8888') pixels.set([b, g, r, 0x5a], i);
      else pixels.set([0x5a, r, g, b], i);
    }
  }
  return { width: w, height: h, grid: new TileGrid(w, h), format, plane: undefined, blank: undefined, pixels };
}

const colour = (x: number, y: number): [number, number, number] => [(x * 37) & 0xff, (y * 91) & 0xff, (x * y + 13) & 0xff];

/** The value RFB says a pixel has in `pf`, computed the slow way. */
function expected(pf: PixelFormat, [r, g, b]: [number, number, number]): number {
  const scale = (v: number, max: number) => Math.round((v * max) / 255);
  return scale(r, pf.redMax) * 2 ** pf.redShift + scale(g, pf.greenMax) * 2 ** pf.greenShift + scale(b, pf.blueMax) * 2 ** pf.blueShift;
}

function read(out: Buffer, at: number, pf: PixelFormat): number {
  if (pf.bitsPerPixel === 32) return pf.bigEndian ? out.readUInt32BE(at) : out.readUInt32LE(at);
  if (pf.bitsPerPixel === 16) return pf.bigEndian ? out.readUInt16BE(at) : out.readUInt16LE(at);
  return out[at]!;
}

describe('tiles', () => {
  it('cuts a screen into 64-pixel tiles, the last ones narrower', () => {
    const g = new TileGrid(200, 70);
    assert.deepEqual([g.cols, g.rows, g.count], [4, 2, 8]);
    assert.deepEqual(g.rect(0), { x: 0, y: 0, w: TILE_SIZE, h: TILE_SIZE });
    assert.deepEqual(g.rect(3), { x: 192, y: 0, w: 8, h: 64 });
    assert.deepEqual(g.rect(7), { x: 192, y: 64, w: 8, h: 6 });
  });

  it('damage piles up per tile, is taken once, and a rectangle marks what it touches (clipped)', () => {
    const g = new TileGrid(200, 70);
    const d = new Damage(g);
    assert.equal(d.empty, true);
    d.add(Uint8Array.of(0, 1, 0, 0, 0, 0, 1, 0));
    d.add(Uint8Array.of(0, 1, 0, 0, 0, 0, 0, 0));
    assert.deepEqual(d.take(), [1, 6]);
    assert.equal(d.empty, true);
    d.addRect({ x: 60, y: 60, w: 10, h: 1000 });
    assert.deepEqual(d.take(), [0, 1, 4, 5]);
    d.addRect({ x: 500, y: 0, w: 10, h: 10 });
    assert.equal(d.empty, true, 'a rectangle off the screen marks nothing');
    d.reset(new TileGrid(64, 64));
    assert.deepEqual(d.take(), [0], 'a reset grid is all pending');
  });
});

describe('pixel formats', () => {
  const formats: Array<[string, PixelFormat]> = [
    ['XRGB8888 layout', { ...XRGB8888_FORMAT }],
    [
      '32-bit big-endian BGR',
      { bitsPerPixel: 32, depth: 24, bigEndian: true, redMax: 255, greenMax: 255, blueMax: 255, redShift: 0, greenShift: 8, blueShift: 16 },
    ],
    [
      'RGB565 little-endian',
      { bitsPerPixel: 16, depth: 16, bigEndian: false, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 },
    ],
    [
      'RGB555 big-endian',
      { bitsPerPixel: 16, depth: 15, bigEndian: true, redMax: 31, greenMax: 31, blueMax: 31, redShift: 10, greenShift: 5, blueShift: 0 },
    ],
    ['BGR233', { bitsPerPixel: 8, depth: 8, bigEndian: false, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6 }],
  ];
  for (const source of ['XRGB8888', 'BGRX8888'] as const) {
    for (const [name, pf] of formats) {
      it(`converts ${source} to ${name}, rectangle by rectangle`, () => {
        const frame = frameOf(100, 70, source, colour);
        const conv = new PixelConverter(pf);
        const r = { x: 13, y: 5, w: 64, h: 60 };
        const out = Buffer.alloc(conv.sizeOf(r) + 4);
        assert.equal(conv.convert(frame, r, out, 4), out.length);
        const bpp = pf.bitsPerPixel / 8;
        for (let y = 0; y < r.h; y++) {
          for (let x = 0; x < r.w; x++) {
            const got = read(out, 4 + (y * r.w + x) * bpp, pf);
            assert.equal(got, expected(pf, colour(r.x + x, r.y + y)), `(${r.x + x},${r.y + y})`);
          }
        }
      });
    }
  }

  it('RGBA for a canvas: R, G, B bytes and an opaque alpha', () => {
    const frame = frameOf(8, 2, 'XRGB8888', colour);
    const conv = new PixelConverter(RGBA_FORMAT, true);
    const out = Buffer.alloc(conv.sizeOf({ x: 0, y: 0, w: 8, h: 2 }));
    conv.convert(frame, { x: 0, y: 0, w: 8, h: 2 }, out, 0);
    for (let i = 0; i < 16; i++) assert.deepEqual([...out.subarray(i * 4, i * 4 + 4)], [...colour(i % 8, Math.floor(i / 8)), 255]);
  });

  it('refuses formats a viewer cannot mean', () => {
    const bad: Array<[Partial<PixelFormat>, RegExp]> = [
      [{ bitsPerPixel: 24 as 32 }, /24 bits per pixel/],
      [{ redMax: 200 }, /red maximum 200/],
      [{ greenMax: 0 }, /green maximum 0/],
      [{ blueShift: 30 }, /blue shift 30/],
      [{ bitsPerPixel: 16, redShift: 16, greenShift: 8, blueShift: 0, redMax: 255 }, /red shift 16/],
    ];
    for (const [change, message] of bad) {
      assert.throws(
        () => checkPixelFormat({ ...XRGB8888_FORMAT, ...change }),
        (e: Error & { code?: string }) => e.code === 'EINVAL' && message.test(e.message),
      );
    }
  });
});
