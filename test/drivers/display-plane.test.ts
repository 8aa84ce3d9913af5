import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VfioError } from '../../src/base/errors.js';
import { DRM_FORMAT, checkPlane, planeToRgb, renderToPng, type DisplayPlane } from '../../src/drivers/display/plane.js';
import { isDisplaySource, type DisplaySource } from '../../src/drivers/display/display-source.js';
import { captureScreen, writeScreenshot } from '../../src/drivers/display/screenshot.js';
import { decodePng } from './display-png-decode.js';

const code = (c: string) => (e: unknown) => e instanceof VfioError && e.code === c;

test('plane: DRM fourcc codes', () => {
  assert.equal(DRM_FORMAT.XRGB8888, 0x34325258);
  assert.equal(DRM_FORMAT.BGRX8888, 0x34325842);
});

test('plane: XRGB8888 little-endian pixels become RGB, honouring stride and offset', () => {
  const fb = new Uint8Array(64);
  const plane: DisplayPlane = { format: 'XRGB8888', width: 2, height: 2, stride: 16, offset: 8 };
  const px = (at: number, r: number, g: number, b: number) => fb.set([b, g, r, 0xee], at);
  px(8, 1, 2, 3);
  px(12, 4, 5, 6);
  px(24, 7, 8, 9);
  px(28, 10, 11, 12);
  assert.deepEqual([...planeToRgb(fb, plane)], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const bgrx = new Uint8Array([0xee, 1, 2, 3]);
  assert.deepEqual([...planeToRgb(bgrx, { format: 'BGRX8888', width: 1, height: 1, stride: 4, offset: 0 })], [1, 2, 3]);
});

test('plane: a plane must fit its framebuffer', () => {
  const ok: DisplayPlane = { format: 'XRGB8888', width: 4, height: 4, stride: 16, offset: 0 };
  checkPlane(ok, 64);
  // the last line needs only its visible pixels
  checkPlane({ ...ok, stride: 32, height: 2 }, 48);
  assert.throws(() => checkPlane(ok, 63), code('EINVAL'));
  assert.throws(() => checkPlane({ ...ok, stride: 12 }, 64), code('EINVAL'));
  assert.throws(() => checkPlane({ ...ok, width: 0 }, 64), code('EINVAL'));
  assert.throws(() => checkPlane({ ...ok, offset: -4 }, 64), code('EINVAL'));
  assert.throws(() => checkPlane({ ...ok, format: 'RGB565' as never }, 64), code('EINVAL'));
});

test('plane: renderToPng gives a PNG of the visible pixels', () => {
  const fb = new Uint8Array(3 * 2 * 4).fill(0x80);
  const png = decodePng(renderToPng(fb, { format: 'XRGB8888', width: 3, height: 2, stride: 12, offset: 0 }));
  assert.equal(png.width, 3);
  assert.equal(png.height, 2);
  assert.ok(png.rgb.every((b) => b === 0x80));
});

test('screenshot: captures a display source and writes the file', async () => {
  const fb = new Uint8Array(8 * 8 * 4);
  for (let i = 0; i < fb.length; i += 4) fb.set([0x30, 0x20, 0x10, 0], i);
  let mode: DisplayPlane | null = null;
  const source: DisplaySource = {
    framebuffer: fb,
    queryPlane() {
      if (!mode) throw new VfioError('ENOENT', 'no mode yet');
      return mode;
    },
  };
  assert.ok(isDisplaySource(source));
  assert.equal(isDisplaySource({ queryPlane() {} }), false);
  assert.equal(isDisplaySource(null), false);
  assert.throws(() => captureScreen(source), code('ENOENT'));
  mode = { format: 'XRGB8888', width: 8, height: 8, stride: 32, offset: 0 };
  const dir = await mkdtemp(join(tmpdir(), 'uvfio-shot-'));
  try {
    const path = join(dir, 'screen.png');
    assert.deepEqual(await writeScreenshot(source, path), mode);
    const png = decodePng(await readFile(path));
    assert.deepEqual([...png.rgb.subarray(0, 3)], [0x10, 0x20, 0x30]);
    await assert.rejects(writeScreenshot(source, join(dir, 'no', 'such', 'dir.png')), code('ENOENT'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
