/**
 * The host side of the display e2e: one uvfio process with the mbochs and
 * mdpy parents on an mdev bus, an mbochs-small and an mdpy-vga device
 * created through it, each served on its own vfio-user socket in the
 * directory given as the first argument.
 *
 * It prints `ready SOCKET1,SOCKET2` once both listen, then follows the
 * guest's console. boot-with-vfio-user.sh copies the console out only when
 * QEMU is gone, so the host reads it where QEMU writes it: in the run
 * directory under RUNS_DIR (third argument) whose test script holds TOKEN
 * (fourth argument). When the guest says it has drawn
 * (`MBOCHS-DRAWN WxH`, `MDPY-DRAWN WxH`), it takes screenshots of the
 * device (uvfio's own screenshot API, into the second argument's directory)
 * until one shows the expected pixels or time runs out, prints
 *     HOST-MATCH mbochs|mdpy ...    or    HOST-MISMATCH mbochs|mdpy ...
 * and answers the guest (see test/e2e/guest/*-test.sh): mbochs by renaming
 * the monitor in its EDID region, mdpy by a word after the frame in BAR0.
 *
 * It also serves the web console (loopback, a port of its own) over the same
 * devices; once the mbochs screenshot matched, a headless Chromium opens the
 * console and compares the canvas of the mbochs device with that screenshot,
 * pixel for pixel, and the host prints
 *     HOST-CONSOLE-MATCH mbochs ...    or    HOST-CONSOLE-MISMATCH mbochs ...
 *
 * Serves until SIGTERM or SIGINT. Warnings go to stderr, where the runner
 * counts them as failures.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioCore } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
import { ConsoleServer } from '../../src/console/console-server.js';
import { parseListenAddress } from '../../src/console/listen-address.js';
import { Screens } from '../../src/console/screens.js';
import { MdevService } from '../../src/daemon/service.js';
import { DefinitionStore } from '../../src/daemon/store.js';
import { canvasPixels, launchBrowser } from '../console/browser.js';
import { buildEdid } from '../../src/drivers/display/edid.js';
import { screenshotDevice } from '../../src/drivers/display/find-display.js';
import { EDID_BLOB_OFFSET, EDID_REG, LINK_STATE, type MbochsDevice, MbochsDriver } from '../../src/drivers/mbochs/index.js';
import { type MdpyDevice, MdpyDriver } from '../../src/drivers/mdpy/index.js';
import { decodePng } from '../drivers/display-png-decode.js';

const [socketDir, shotDir, runsDir, token] = process.argv.slice(2);
if (!socketDir || !shotDir || !runsDir || !token) {
  console.error('usage: display-host.js SOCKET_DIR SCREENSHOT_DIR RUNS_DIR TOKEN');
  process.exit(2);
}
process.on('warning', (w) => console.error(`warning: ${w.message}`));

/** How long the host keeps taking screenshots before it calls a mismatch. */
const MATCH_WINDOW_MS = Number(process.env.DISPLAY_MATCH_MS ?? 20_000);
const MBOCHS_UUID = 'b0c5b0c5-0000-4000-8000-000000000001';
const MDPY_UUID = 'b0c5b0c5-0000-4000-8000-000000000002';

type Rgb = readonly [number, number, number];
type Image = { width: number; height: number; rgb: Uint8Array };

/** test/e2e/guest/mbochs-test.sh's quadrants. */
function mbochsExpected(w: number, h: number): (x: number, y: number) => Rgb {
  const half = Math.floor(w / 2);
  const top = Math.floor(h / 2);
  return (x, y) => (y < top ? (x < half ? [255, 0, 0] : [0, 255, 0]) : x < half ? [0, 0, 255] : [0x20, 0x40, 0x80]);
}

/** The device's grey ramp with test/e2e/guest/mdpy-test.sh's three rectangles. */
function mdpyExpected(w: number, h: number): (x: number, y: number) => Rgb {
  const rects: Array<[number, number, Rgb]> = [
    [16, 16, [255, 0, 0]],
    [Math.floor(w / 2), Math.floor(h / 2), [0, 255, 0]],
    [w - 48, h - 24, [0, 0, 255]],
  ];
  return (x, y) => {
    for (const [rx, ry, c] of rects) if (x >= rx && x < rx + 32 && y >= ry && y < ry + 8) return c;
    const g = Math.floor((y * 255) / h);
    return [g, g, g];
  };
}

/** Mismatching pixels of an image (a PNG, a canvas) against the expectation, and the first few of them. */
function compare(png: Image, want: (x: number, y: number) => Rgb): { bad: number; first: string[] } {
  let bad = 0;
  const first: string[] = [];
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 3;
      const got: Rgb = [png.rgb[i]!, png.rgb[i + 1]!, png.rgb[i + 2]!];
      const exp = want(x, y);
      if (got[0] !== exp[0] || got[1] !== exp[1] || got[2] !== exp[2]) {
        bad++;
        if (first.length < 5) first.push(`(${x},${y}) ${got.join('/')} want ${exp.join('/')}`);
      }
    }
  }
  return { bad, first };
}

/** Screenshots `uuid` until it shows `want` at `w`x`h` or the window closes; the matching screenshot, or undefined. */
async function check(what: string, uuid: string, w: number, h: number, want: (x: number, y: number) => Rgb): Promise<Image | undefined> {
  const deadline = Date.now() + MATCH_WINDOW_MS;
  let last: string;
  for (let n = 1; ; n++) {
    const path = join(shotDir!, `${what}.png`);
    try {
      const plane = await screenshotDevice(core, uuid, path);
      const png = decodePng(await readFile(path));
      if (png.width !== w || png.height !== h) {
        last = `plane ${plane.width}x${plane.height}, the guest drew ${w}x${h}`;
      } else {
        const { bad, first } = compare(png, want);
        if (bad === 0) {
          console.log(`HOST-MATCH ${what} ${w}x${h} stride=${plane.stride} offset=${plane.offset} after ${n} screenshot(s): ${path}`);
          return png;
        }
        last = `${bad} of ${w * h} pixels differ: ${first.join('; ')}`;
      }
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      console.log(`HOST-MISMATCH ${what} after ${n} screenshot(s): ${last}`);
      return undefined;
    }
    await sleep(250);
  }
}

/** The pixels of an image as an expectation. */
function pixelsOf(img: Image): (x: number, y: number) => Rgb {
  return (x, y) => {
    const i = (y * img.width + x) * 3;
    return [img.rgb[i]!, img.rgb[i + 1]!, img.rgb[i + 2]!];
  };
}

/** Opens the web console in Chromium until the canvas of `uuid` equals uvfio's screenshot `shot`, pixel for pixel; true on a match. */
async function checkConsole(what: string, uuid: string, shot: Image): Promise<boolean> {
  const { width: w, height: h } = shot;
  const want = pixelsOf(shot);
  const browser = await launchBrowser();
  let last: string;
  try {
    const page = await browser.context.newPage();
    await page.goto(web.url);
    await page.waitForSelector(`canvas[data-uuid="${uuid}"][data-signal="yes"]`, { timeout: MATCH_WINDOW_MS });
    const deadline = Date.now() + MATCH_WINDOW_MS;
    for (let n = 1; ; n++) {
      const shown = await canvasPixels(page, uuid);
      if (shown.width !== w || shown.height !== h) {
        last = `the canvas is ${shown.width}x${shown.height}, the guest drew ${w}x${h}`;
      } else {
        const { bad, first } = compare(shown, want);
        if (bad === 0) {
          console.log(`HOST-CONSOLE-MATCH ${what} ${w}x${h}: the canvas equals uvfio's screenshot, after ${n} look(s) at the page`);
          return true;
        }
        last = `${bad} of ${w * h} pixels differ from the screenshot: ${first.join('; ')}`;
      }
      if (Date.now() > deadline) break;
      await sleep(250);
    }
  } catch (err) {
    last = (err as Error).message.split('\n')[0]!;
  } finally {
    await browser.close();
  }
  console.log(`HOST-CONSOLE-MISMATCH ${what}: ${last}`);
  return false;
}

/** Renames the mbochs monitor, following the EDID update protocol in one turn. */
function answerMbochs(dev: MbochsDevice, ok: boolean, w: number, h: number): void {
  const blob = buildEdid({ width: w, height: h, name: ok ? 'uvfio-done' : 'uvfio-fail' });
  const reg = (offset: number, v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    dev.edid.write(offset, b);
  };
  reg(EDID_REG.LINK_STATE, LINK_STATE.DOWN);
  dev.edid.write(EDID_BLOB_OFFSET, blob);
  reg(EDID_REG.EDID_SIZE, blob.length);
  reg(EDID_REG.LINK_STATE, LINK_STATE.UP);
}

function answerMdpy(dev: MdpyDevice, ok: boolean): void {
  new DataView(dev.framebuffer.buffer, dev.framebuffer.byteOffset).setUint32(dev.width * dev.height * 4, ok ? 0x600d600d : 0xbad0bad0, true);
}

const core = new VfioCore();
const server = new VfioUserServer({
  core,
  socketDir,
  log: { info: () => {}, warn: (msg, fields) => console.error(`warning: ${msg} ${JSON.stringify(fields ?? {})}`) },
});
const bus = new MdevBus({ core, serve: (device) => server.serve(device) });
bus.registerParent({ name: 'mbochs', driver: new MbochsDriver() });
bus.registerParent({ name: 'mdpy', driver: new MdpyDriver() });
const mbochs = (await bus.create(MBOCHS_UUID, 'mbochs-small')).device as MbochsDevice;
const mdpy = (await bus.create(MDPY_UUID, 'mdpy-vga')).device as MdpyDevice;
// The web console over the same devices, with the daemon's own parts.
const warnOnly = {
  debug: () => {},
  info: () => {},
  warn: (msg: string, fields?: object) => console.error(`warning: ${msg} ${JSON.stringify(fields ?? {})}`),
  error: (msg: string, fields?: object) => console.error(`error: ${msg} ${JSON.stringify(fields ?? {})}`),
};
const screens = new Screens({ core, log: warnOnly, vnc: false });
const web = await ConsoleServer.listen({
  address: parseListenAddress('0'),
  service: new MdevService({ store: DefinitionStore.open(':memory:'), bus }),
  screens,
  log: warnOnly,
});
console.log(`ready ${[MBOCHS_UUID, MDPY_UUID].map((u) => server.socketPath(u)).join(',')}`);

async function stop(): Promise<void> {
  await web.close();
  await screens.close();
  await server.close();
  for (const mdev of bus.devices()) await bus.remove(mdev.uuid);
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

/** The console log of the run whose test script holds the token, once that run exists. */
async function findConsole(): Promise<string | undefined> {
  for (const id of await readdir(runsDir!).catch(() => [])) {
    const script = await readFile(join(runsDir!, id, 'overlay', 'e2e', 'test.sh'), 'utf8').catch(() => '');
    if (script.includes(token!)) return join(runsDir!, id, 'console.log');
  }
  return undefined;
}

// Follow the console log for the guest's DRAWN lines.
const handled = new Set<string>();
let consoleLog: string | undefined;
for (;;) {
  consoleLog ??= await findConsole();
  const text = consoleLog ? await readFile(consoleLog, 'utf8').catch(() => '') : '';
  for (const m of text.matchAll(/^(MBOCHS|MDPY)-DRAWN (\d+)x(\d+)/gm)) {
    const [, which, ws, hs] = m;
    if (handled.has(which!)) continue;
    handled.add(which!);
    const w = Number(ws);
    const h = Number(hs);
    if (which === 'MBOCHS') {
      // The guest's picture stays until it hears back: the console is checked before the answer.
      const shot = await check('mbochs', MBOCHS_UUID, w, h, mbochsExpected(w, h));
      answerMbochs(mbochs, shot !== undefined && (await checkConsole('mbochs', MBOCHS_UUID, shot)), w, h);
    } else {
      answerMdpy(mdpy, (await check('mdpy', MDPY_UUID, w, h, mdpyExpected(w, h))) !== undefined);
    }
  }
  await sleep(200);
}
