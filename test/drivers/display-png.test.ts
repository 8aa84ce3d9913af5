import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { VfioError } from '../../src/base/errors.js';
import { encodePng } from '../../src/drivers/display/png.js';
import { decodePng } from './display-png-decode.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function gradient(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      rgb[i] = x & 0xff;
      rgb[i + 1] = y & 0xff;
      rgb[i + 2] = (x ^ y) & 0xff;
    }
  }
  return rgb;
}

test('png: decodes back to the same pixels, chunk CRCs and order correct', () => {
  const rgb = gradient(37, 11);
  const png = decodePng(encodePng(rgb, 37, 11));
  assert.equal(png.width, 37);
  assert.equal(png.height, 11);
  assert.deepEqual(png.chunks, ['IHDR', 'IDAT', 'IEND']);
  assert.deepEqual(png.rgb, rgb);
});

test('png: a 1x1 image', () => {
  const png = decodePng(encodePng(Uint8Array.of(1, 2, 3), 1, 1));
  assert.deepEqual([...png.rgb], [1, 2, 3]);
});

test('png: python3 (its own zlib and CRC) reads the file the same way', (t) => {
  const rgb = gradient(64, 48);
  const file = encodePng(rgb, 64, 48);
  const script = `
import sys, struct, zlib
d = sys.stdin.buffer.read()
assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
i, idat = 8, b''
while i < len(d):
    n, = struct.unpack('>I', d[i:i+4]); typ = d[i+4:i+8]; body = d[i+8:i+8+n]
    assert struct.unpack('>I', d[i+8+n:i+12+n])[0] == zlib.crc32(typ + body) & 0xffffffff, typ
    if typ == b'IHDR': w, h = struct.unpack('>II', body[:8])
    if typ == b'IDAT': idat += body
    i += 12 + n
raw = zlib.decompress(idat)
rows = [raw[y*(w*3+1)+1:(y+1)*(w*3+1)] for y in range(h)]
sys.stdout.write('%d %d %s' % (w, h, sum(sum(r) for r in rows)))
`;
  const run = spawnSync('python3', ['-c', script], { input: file });
  if (run.error) return t.skip('python3 is not available');
  assert.equal(run.status, 0, run.stderr.toString());
  assert.equal(run.stdout.toString(), `64 48 ${rgb.reduce((a, b) => a + b, 0)}`);
});

test('png: refuses wrong sizes and dimensions', () => {
  assert.throws(() => encodePng(new Uint8Array(5), 1, 2), EINVAL);
  assert.throws(() => encodePng(new Uint8Array(0), 0, 0), EINVAL);
  assert.throws(() => encodePng(new Uint8Array(3), 1.5, 2), EINVAL);
});
