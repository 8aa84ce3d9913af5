/**
 * `uvfio screenshot` against a running daemon: the default mdpy device's
 * screen lands in a real PNG file; every refusal is one clear line.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon, fails, ok, okJson, sandbox, type Sandbox } from './harness.js';
import { decodePng } from '../drivers/display-png-decode.js';

interface Dev {
  uuid: string;
  parent: string;
}

let sb: Sandbox;
let daemon: Daemon;
let byParent: Map<string, string>;

before(async () => {
  sb = sandbox();
  daemon = await Daemon.start(sb);
  const running = await okJson<Dev[]>(sb, ['list']);
  byParent = new Map(running.map((d) => [d.parent, d.uuid]));
});
after(() => {
  daemon?.kill();
  sb?.remove();
});

describe('uvfio screenshot', () => {
  it("writes the mdpy device's screen, as the guest would see it, to a PNG", async () => {
    const out = join(sb.dir, 'mdpy.png');
    const text = await ok(sb, ['screenshot', '-u', byParent.get('mdpy')!, '-o', out]);
    assert.equal(text.trim(), `${out}: 1024x768 XRGB8888`);
    const png = decodePng(readFileSync(out));
    assert.deepEqual([png.width, png.height], [1024, 768]);
    // mdpy's power-on screen is a grey ramp: line y has level y*255/height.
    for (const y of [0, 100, 767]) {
      const level = Math.floor((y * 255) / 768);
      const px = png.rgb.subarray(y * 1024 * 3, y * 1024 * 3 + 3);
      assert.deepEqual([...px], [level, level, level], `line ${y}`);
    }
    const json = await okJson<{ width: number; height: number; stride: number; format: string }>(sb, [
      'screenshot',
      '-u',
      byParent.get('mdpy')!,
      '-o',
      out,
    ]);
    assert.deepEqual([json.width, json.height, json.stride, json.format], [1024, 768, 4096, 'XRGB8888']);
  });

  it('refuses clearly: no mode yet, no display, not running, no output file', async () => {
    const out = join(sb.dir, 'x.png');
    assert.match(await fails(sb, ['screenshot', '-u', byParent.get('mbochs')!, '-o', out]), /not programmed a display mode/);
    assert.match(await fails(sb, ['screenshot', '-u', byParent.get('mtty')!, '-o', out]), /^uvfio: .*(display|screen)/);
    assert.match(await fails(sb, ['screenshot', '-u', '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', '-o', out]), /is not running/);
    assert.match(await fails(sb, ['screenshot', '-u', byParent.get('mdpy')!]), /-o\/--output/);
    assert.match(await fails(sb, ['screenshot', '-u', 'not-a-uuid', '-o', out]), /^uvfio: /);
  });
});
