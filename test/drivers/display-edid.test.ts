import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { EDID_BLOCK_SIZE, buildEdid, isValidEdid, preferredTiming } from '../../src/drivers/display/edid.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

test('edid: 128 bytes, header, version 1.4, bytes sum to 0 mod 256', () => {
  const e = buildEdid({ width: 1024, height: 768 });
  assert.equal(e.length, EDID_BLOCK_SIZE);
  assert.deepEqual([...e.subarray(0, 8)], [0, 255, 255, 255, 255, 255, 255, 0]);
  assert.equal(e[18], 1);
  assert.equal(e[19], 4);
  assert.equal(e.reduce((a, b) => a + b, 0) % 256, 0);
  assert.ok(isValidEdid(e));
  assert.equal(e[126], 0, 'no extensions');
});

test('edid: manufacturer id packs three letters in 5 bits each', () => {
  const e = buildEdid({ width: 800, height: 600, manufacturer: 'QEM' });
  const id = (e[8]! << 8) | e[9]!;
  const letters = [(id >> 10) & 31, (id >> 5) & 31, id & 31].map((c) => String.fromCharCode(64 + c)).join('');
  assert.equal(letters, 'QEM');
  assert.equal(id >> 15, 0, 'bit 15 reserved');
});

test('edid: the preferred mode is the first detailed timing, at about the refresh asked', () => {
  for (const [w, h] of [
    [640, 480],
    [800, 600],
    [1024, 768],
    [1920, 1080],
    [1920, 1440],
    [2560, 1600],
  ] as const) {
    const e = buildEdid({ width: w, height: h });
    const t = preferredTiming(e);
    assert.equal(t.width, w);
    assert.equal(t.height, h);
    const refresh = (t.pixelClockKhz * 1000) / ((w + t.hblank) * (h + t.vblank));
    assert.ok(refresh > 59 && refresh <= 60.01, `${w}x${h}: ${refresh} Hz`);
    assert.ok(t.vblank * (1e6 / refresh / (h + t.vblank)) >= 460, `${w}x${h}: vertical blank of at least 460 us`);
    assert.equal(e[24]! & 0x02, 0x02, 'the preferred timing is native');
  }
});

test('edid: established timings stop at the maximum', () => {
  const small = buildEdid({ width: 800, height: 600 });
  assert.equal(small[35], 0b0010_0001, '640x480 and 800x600 at 60 Hz');
  assert.equal(small[36], 0);
  const big = buildEdid({ width: 800, height: 600, maxWidth: 1920, maxHeight: 1200 });
  assert.equal(big[36], 0b0000_1000, 'and 1024x768 at 60 Hz');
});

test('edid: monitor name and range limits descriptors', () => {
  const e = buildEdid({ width: 1024, height: 768, name: 'mbochs' });
  const tags = [72, 90, 108].map((at) => e[at + 3]);
  assert.deepEqual(tags, [0xfd, 0xfc, 0x10]);
  assert.equal(String.fromCharCode(...e.subarray(95, 102)), 'mbochs\n');
  assert.ok(e[72 + 5]! <= 60 && e[72 + 6]! >= 60, 'vertical range holds 60 Hz');
  const t = preferredTiming(e);
  assert.ok(e[72 + 9]! * 10_000 >= t.pixelClockKhz, 'max pixel clock holds the preferred mode');
});

test('edid: a damaged block is rejected', () => {
  const e = buildEdid({ width: 1024, height: 768 });
  e[60]! ^= 1;
  assert.equal(isValidEdid(e), false);
  assert.throws(() => preferredTiming(e), EINVAL);
});

test('edid: refuses what an EDID cannot say', () => {
  assert.throws(() => buildEdid({ width: 32, height: 768 }), EINVAL);
  assert.throws(() => buildEdid({ width: 5000, height: 768 }), EINVAL);
  assert.throws(() => buildEdid({ width: 1024, height: 768, manufacturer: 'ab' }), EINVAL);
  assert.throws(() => buildEdid({ width: 1024, height: 768, name: 'a name far too long' }), EINVAL);
  assert.throws(() => buildEdid({ width: 1024, height: 768, refresh: 1000 }), EINVAL);
});
