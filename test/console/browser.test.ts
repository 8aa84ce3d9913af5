/**
 * The console as an operator uses it: the real daemon with --http, the URL
 * `uvfio console` prints, opened in a real headless Chromium. The page
 * lists the types, starts a device, and its canvas shows the pixels a
 * vfio-user client wrote into the mdpy framebuffer; a VNC viewer uvfio did
 * not write (gtk-vnc's gvnccapture) captures the same screen; the page
 * stops the device.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { PciRegion } from '../../src/core/index.js';
import { VfioUserClient } from '../../src/vfio-user/client.js';
import { Daemon, ok, okJson, sandbox, type Sandbox } from '../cli/harness.js';
import { canvasPixels, launchBrowser, type Browser, type PageGlobals } from './browser.js';
import { pattern, type Rgb } from './helpers.js';
import { readPng } from './png-read.js';

const GVNCCAPTURE = '/usr/bin/gvnccapture';
const W = 640;
const H = 480;

let sb: Sandbox;
let daemon: Daemon;
let browser: Browser;
let page: Page;

interface Listed {
  uuid: string;
  parent: string;
  mdev_type: string;
  socket?: string;
  vnc?: string;
}

before(async () => {
  sb = sandbox();
  daemon = await Daemon.start(sb, ['--http', '0', '--no-defaults']);
  browser = await launchBrowser();
  page = await browser.context.newPage();
});
after(async () => {
  await browser?.close();
  daemon?.kill();
  sb?.remove();
});

/** The guest's drawing: `pattern` with a few flat rectangles on top. */
function drawing(x: number, y: number): Rgb {
  if (x >= 100 && x < 300 && y >= 50 && y < 150) return [255, 0, 0];
  if (x >= 320 && x < 600 && y >= 300 && y < 460) return [0, 128, 255];
  return pattern(x, y);
}

/** Pixels of `img` that differ from `want`, and the first few of them. */
function mismatches(
  img: { width: number; height: number; rgb: Uint8Array },
  want: (x: number, y: number) => Rgb,
): { count: number; first: string[] } {
  let count = 0;
  const first: string[] = [];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 3;
      const w = want(x, y);
      if (img.rgb[i] !== w[0] || img.rgb[i + 1] !== w[1] || img.rgb[i + 2] !== w[2]) {
        if (count++ < 5) first.push(`(${x},${y}) ${img.rgb[i]}/${img.rgb[i + 1]}/${img.rgb[i + 2]} want ${w.join('/')}`);
      }
    }
  }
  return { count, first };
}

describe('web console in Chromium, and a VNC viewer', () => {
  let uuid = '';

  it('opens from the URL "uvfio console" prints and shows the types; no device yet', async () => {
    const url = (await ok(sb, ['console'])).trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    await page.goto(url);
    assert.equal(new URL(page.url()).search, '', 'the token is gone from the address bar');
    await page.waitForSelector('#types tr[data-parent="mdpy"][data-type="mdpy-vga"]', { timeout: 15_000 });
    await page.waitForSelector('#link[data-state="up"]');
    assert.equal(await page.isVisible('#no-devices'), true);
    const available = await page.textContent('#types tr[data-type="mdpy-vga"] td.num');
    assert.match(available!, /^\d+$/);
  });

  it('starts an mdpy device from the page: it runs, listed by the command line with its VNC address', async () => {
    await page.click('#types tr[data-type="mdpy-vga"] button[data-action="start"]');
    const row = await page.waitForSelector('#devices tr[data-state="running"]', { timeout: 15_000 });
    uuid = (await row.getAttribute('data-uuid'))!;
    const listed = await okJson<Listed[]>(sb, ['list']);
    assert.deepEqual(
      listed.map((d) => [d.uuid, d.mdev_type]),
      [[uuid, 'mdpy-vga']],
    );
    assert.match(listed[0]!.vnc!, /^127\.0\.0\.1:\d+$/);
    assert.equal(await (await row.$('td:nth-child(6)'))?.textContent(), listed[0]!.vnc);
    await page.waitForSelector(`canvas[data-uuid="${uuid}"][data-signal="yes"]`, { timeout: 15_000 });
  });

  it("the canvas shows the pixels a client wrote into the device's framebuffer", async () => {
    const [listed] = await okJson<Listed[]>(sb, ['list', '-u', uuid]);
    const client = await VfioUserClient.connect(listed!.socket!);
    try {
      // The page names the client (this test's process) and what it mapped.
      await client.dmaMapMemory(0x100000, 1 << 20);
      const who = await page.waitForSelector(`#devices tr[data-uuid="${uuid}"] .client[data-pid="${process.pid}"]`, { timeout: 15_000 });
      assert.match((await who.textContent())!, /node/);
      await page.waitForFunction(
        ([u, pid]) =>
          /DMA: 1 mapping, 1 MiB/.test(
            (globalThis as unknown as PageGlobals).document.querySelector(`#devices tr[data-uuid="${u}"] .client[data-pid="${pid}"]`)?.textContent ??
              '',
          ),
        [uuid, process.pid] as const,
        { timeout: 15_000 },
      );
      const bar = await client.mapRegion(PciRegion.BAR0);
      const fb = bar.areas[0]!.bytes;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const [r, g, b] = drawing(x, y);
          fb.set([b, g, r, 0], (y * W + x) * 4);
        }
      }
      let last = { count: -1, first: [] as string[] };
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const shown = await canvasPixels(page, uuid);
        assert.deepEqual([shown.width, shown.height], [W, H]);
        last = mismatches(shown, drawing);
        if (last.count === 0) break;
        await page.waitForTimeout(100);
      }
      assert.equal(last.count, 0, `pixels differ: ${last.first.join('; ')}`);
      assert.equal(await page.textContent(`figure[data-uuid="${uuid}"] .mode`), '640×480 XRGB8888');

      // A VNC viewer that is not uvfio's sees the same screen.
      assert.ok(existsSync(GVNCCAPTURE), `no ${GVNCCAPTURE}: install Debian's gvncviewer (see .ci/run)`);
      const port = Number(listed!.vnc!.split(':')[1]);
      assert.ok(port >= 5900, 'gvnccapture names a port as a display number above 5900');
      const out = join(sb.dir, 'vnc.png');
      await promisify(execFile)(GVNCCAPTURE, ['--quiet', `127.0.0.1:${port - 5900}`, out], { timeout: 30_000 });
      const captured = readPng(readFileSync(out));
      assert.deepEqual([captured.width, captured.height], [W, H]);
      const vnc = mismatches(captured, drawing);
      assert.equal(vnc.count, 0, `the VNC capture differs: ${vnc.first.join('; ')}`);
    } finally {
      client.close();
    }
  });

  it('stops the device from the page', async () => {
    await page.click(`#devices tr[data-uuid="${uuid}"] button[data-action="stop"]`);
    await page.waitForSelector(`#devices tr[data-uuid="${uuid}"]`, { state: 'detached', timeout: 15_000 });
    await page.waitForSelector(`figure[data-uuid="${uuid}"]`, { state: 'detached' });
    assert.deepEqual(await okJson<Listed[]>(sb, ['list']), []);
    assert.match((await page.textContent('#messages'))!, new RegExp(`stopped ${uuid}`));
  });
});
