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
 * Serves until SIGTERM or SIGINT. Warnings go to stderr, where the runner
 * counts them as failures.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioCore } from '../../src/core/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { VfioUserServer } from '../../src/vfio-user/server.js';
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

/** Mismatching pixels of a PNG against the expectation, and the first few of them. */
function compare(png: ReturnType<typeof decodePng>, want: (x: number, y: number) => Rgb): { bad: number; first: string[] } {
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

/** Screenshots `uuid` until it shows `want` at `w`x`h` or the window closes; true on a match. */
async function check(what: string, uuid: string, w: number, h: number, want: (x: number, y: number) => Rgb): Promise<boolean> {
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
          return true;
        }
        last = `${bad} of ${w * h} pixels differ: ${first.join('; ')}`;
      }
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      console.log(`HOST-MISMATCH ${what} after ${n} screenshot(s): ${last}`);
      return false;
    }
    await sleep(250);
  }
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
console.log(`ready ${[MBOCHS_UUID, MDPY_UUID].map((u) => server.socketPath(u)).join(',')}`);

async function stop(): Promise<void> {
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
    if (which === 'MBOCHS') answerMbochs(mbochs, await check('mbochs', MBOCHS_UUID, w, h, mbochsExpected(w, h)), w, h);
    else answerMdpy(mdpy, await check('mdpy', MDPY_UUID, w, h, mdpyExpected(w, h)));
  }
  await sleep(200);
}
