/**
 * The VNC server of a display device, spoken to byte by byte over real TCP
 * sockets: the RFB 3.3/3.7/3.8 handshakes, full and incremental updates in
 * the viewer's pixel format, mode changes, refusals in words, and viewers
 * that misbehave while a bystander keeps watching.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioCore, type VfioDevice } from '../../src/core/index.js';
import { Screens } from '../../src/console/screens.js';
import { VncServer } from '../../src/console/vnc-server.js';
import { XRGB8888_FORMAT } from '../../src/console/pixel-format.js';
import { CONSOLE_LIMITS } from '../../src/console/limits.js';
import { ClientScreen, RfbClient } from './rfb-client.js';
import { MemoryLog, fillRect, mbochs, mdpy, paintPattern, pattern, setMode } from './helpers.js';
import { until } from '../support/until.js';

const core = new VfioCore();
const log = new MemoryLog();
const screens = new Screens({ core, log, intervalMs: 10 });
const clients: RfbClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await screens.close();
  for (const d of core.devices()) if (d.state === 'registered') await d.unregister();
});

async function open(address: string): Promise<RfbClient> {
  const c = await RfbClient.open(address);
  clients.push(c);
  return c;
}

/** A display device with a VNC server; its address. */
async function served<D extends VfioDevice>(dev: D): Promise<{ dev: D; address: string }> {
  await screens.add(dev);
  const address = screens.vncAddress(dev.name);
  assert.ok(address, 'the device has a VNC address');
  assert.match(address, /^127\.0\.0\.1:\d+$/);
  return { dev, address };
}

/** A viewer that has shaken hands and holds the whole screen. */
async function viewer(address: string, minor: 3 | 7 | 8 = 8, encodings = [0, -223]): Promise<{ c: RfbClient; screen: ClientScreen }> {
  const c = await open(address);
  const init = await c.handshake(minor);
  c.setEncodings(encodings);
  c.requestUpdate(false);
  const screen = new ClientScreen(init.width, init.height);
  screen.apply(await c.readUpdate());
  return { c, screen };
}

describe('vnc server', () => {
  it('speaks RFB 3.8: version, security None, ServerInit with the screen, then the whole screen', async () => {
    const { dev, address } = await served(mdpy(core, 320, 200));
    paintPattern(dev.framebuffer, 320, 200);
    const c = await open(address);
    const init = await c.handshake(8);
    assert.deepEqual([init.width, init.height], [320, 200]);
    assert.equal(init.name, `uvfio ${dev.name}`);
    assert.deepEqual(init.format, {
      bitsPerPixel: 32,
      depth: 24,
      bigEndian: false,
      trueColour: true,
      redMax: 255,
      greenMax: 255,
      blueMax: 255,
      redShift: 16,
      greenShift: 8,
      blueShift: 0,
    });
    c.requestUpdate(false);
    const screen = new ClientScreen(320, 200);
    const rects = await c.readUpdate();
    assert.equal(rects.length, 5 * 4, 'every tile of a 320x200 screen');
    screen.apply(rects);
    for (let y = 0; y < 200; y += 7) for (let x = 0; x < 320; x += 5) assert.deepEqual(screen.at(x, y), [...pattern(x, y)]);
  });

  it('speaks 3.3 and 3.7 too', async () => {
    const { address } = await served(mdpy(core, 64, 64));
    for (const minor of [3, 7] as const) {
      const { screen } = await viewer(address, minor);
      assert.deepEqual([screen.width, screen.height], [64, 64]);
    }
  });

  it('sends only the tiles that changed, once asked, in the pixel format the viewer set', async () => {
    const { dev, address } = await served(mdpy(core, 320, 200));
    const { c, screen } = await viewer(address);
    c.requestUpdate(true);
    fillRect(dev.framebuffer, 320 * 4, 130, 70, 3, 3, [250, 10, 20]);
    const rects = await c.readUpdate();
    assert.deepEqual(
      rects.map((r) => [r.x, r.y, r.w, r.h]),
      [[128, 64, 64, 64]],
      'one tile',
    );
    screen.apply(rects);
    assert.deepEqual(screen.at(131, 71), [250, 10, 20]);

    // RGB565, big-endian: a 16-bit viewer.
    c.setPixelFormat({
      bitsPerPixel: 16,
      depth: 16,
      bigEndian: true,
      redMax: 31,
      greenMax: 63,
      blueMax: 31,
      redShift: 11,
      greenShift: 5,
      blueShift: 0,
    });
    c.requestUpdate(true);
    const full = await c.readUpdate();
    assert.equal(full.length, 20, 'a new pixel format resends everything');
    const tile = full.find((r) => r.x === 128 && r.y === 64)!;
    const v = tile.data.readUInt16BE(((71 - 64) * 64 + (131 - 128)) * 2);
    assert.deepEqual([v >> 11, (v >> 5) & 63, v & 31], [Math.round((250 * 31) / 255), Math.round((10 * 63) / 255), Math.round((20 * 31) / 255)]);
  });

  it('tells a viewer of a mode change with DesktopSize, and lets go of one that cannot resize', async () => {
    const { dev, address } = await served(mbochs(core));
    const { c: resizer, screen } = await viewer(address, 8, [0, -223]);
    const { c: fixed } = await viewer(address, 8, [0]);
    assert.deepEqual([screen.width, screen.height], [640, 480], 'no mode yet: a black 640x480');
    resizer.requestUpdate(true);
    fixed.requestUpdate(true);
    paintPattern(dev.framebuffer, 800, 600);
    setMode(dev, 800, 600);
    const rects = await resizer.readUpdate();
    assert.deepEqual(rects[0], { x: 0, y: 0, w: 800, h: 600, encoding: -223, data: Buffer.alloc(0) });
    screen.apply(rects);
    assert.equal(rects.length, 1 + 13 * 10, 'the new size, then every tile of it');
    assert.deepEqual(screen.at(799, 599), [...pattern(799, 599)]);
    await fixed.closedByServer();
    assert.ok(log.lines.some((l) => /cannot resize/.test(String(l.fields.reason))));
  });

  it('refuses in words: a security type not offered, a viewer past the limit; drops a stranger', async () => {
    const { address } = await served(mdpy(core, 64, 64));
    const vnc2 = await open(address);
    await vnc2.read(12);
    vnc2.write('RFB 003.008\n');
    await vnc2.read(2);
    vnc2.write(Buffer.of(2)); // VNC authentication: not offered
    assert.equal((await vnc2.read(4)).readUInt32BE(0), 1, 'security result: failed');
    const n = (await vnc2.read(4)).readUInt32BE(0);
    assert.match((await vnc2.read(n)).toString(), /only None/);
    await vnc2.closedByServer();

    const stranger = await open(address);
    await stranger.read(12);
    stranger.write('GET / HTTP/1.1\r\n\r\n');
    await stranger.closedByServer();

    // Those two are gone; now fill the device up.
    for (let i = 0; i < CONSOLE_LIMITS.maxVncClients; i++) await viewer(address);
    const extra = await open(address);
    await extra.read(12);
    extra.write('RFB 003.008\n');
    assert.equal((await extra.read(1))[0], 0, 'no security types: refused');
    const len = (await extra.read(4)).readUInt32BE(0);
    assert.match((await extra.read(len)).toString(), /too many viewers: at most 8/);
    await extra.closedByServer();
  });

  it('a viewer that misbehaves is dropped; a bystander keeps its updates', async () => {
    const { dev, address } = await served(mdpy(core, 128, 128));
    const { c: bystander, screen } = await viewer(address);
    const attacks: Array<(c: RfbClient) => void> = [
      (c) => c.write(Buffer.of(99, 1, 2, 3)), // unknown message type
      (c) => c.setPixelFormat(XRGB8888_FORMAT, false), // colour map
      (c) => c.setPixelFormat({ ...XRGB8888_FORMAT, bitsPerPixel: 24 as 32 }),
    ];
    for (const attack of attacks) {
      const { c } = await viewer(address);
      attack(c);
      await c.closedByServer();
      bystander.requestUpdate(true);
      fillRect(dev.framebuffer, 128 * 4, 0, 0, 1, 1, [attacks.indexOf(attack) * 40 + 1, 2, 3]);
      screen.apply(await bystander.readUpdate());
      assert.deepEqual(screen.at(0, 0), [attacks.indexOf(attack) * 40 + 1, 2, 3]);
    }
  });

  it('skips clipboard text as it streams, however long, and keeps serving', async () => {
    const { dev, address } = await served(mdpy(core, 64, 64));
    const { c, screen } = await viewer(address);
    const size = 3 * 1024 * 1024;
    const head = Buffer.alloc(8);
    head[0] = 6;
    head.writeUInt32BE(size, 4);
    c.write(head);
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    for (let sent = 0; sent < size; sent += chunk.length) c.write(chunk);
    c.requestUpdate(true);
    fillRect(dev.framebuffer, 64 * 4, 5, 5, 1, 1, [9, 8, 7]);
    screen.apply(await c.readUpdate());
    assert.deepEqual(screen.at(5, 5), [9, 8, 7]);
  });

  it('a viewer that asks and never reads makes the server hold a bounded amount', async () => {
    const dev = mdpy(core, 320, 200);
    const server = await VncServer.listen({ feed: screens.feed(dev.name), name: 'slow', log });
    try {
      const { c } = await viewer(server.address);
      c.socket.pause();
      const frameBytes = 320 * 200 * 4;
      for (let i = 0; i < 400; i++) {
        fillRect(dev.framebuffer, 320 * 4, 0, 0, 320, 1, [i & 0xff, 0, 0]);
        c.requestUpdate(false);
      }
      // Unbounded, the server would queue a frame per request: 400 frames, 102 MB.
      await until(() => server.queuedBytes > CONSOLE_LIMITS.maxVncBufferedBytes, 'the socket to back up', 3000);
      await sleep(300);
      assert.ok(server.queuedBytes <= CONSOLE_LIMITS.maxVncBufferedBytes + frameBytes + 64, `queued ${server.queuedBytes} bytes`);
    } finally {
      await server.close();
    }
  });

  it('drops a viewer that never finishes the handshake', async () => {
    const dev = mdpy(core, 64, 64);
    const feed = screens.feed(dev.name);
    const server = await VncServer.listen({ feed, name: 'x', log, handshakeTimeoutMs: 100 });
    try {
      const silent = await open(server.address);
      await silent.read(12);
      await silent.closedByServer(2000);
      assert.equal(feed.running, false, 'a viewer in its handshake does not make the feed look');
    } finally {
      await server.close();
    }
  });

  it('closes the listener and every viewer when the device goes', async () => {
    const { dev, address } = await served(mdpy(core, 64, 64));
    const { c } = await viewer(address);
    const feed = screens.feed(dev.name);
    assert.equal(feed.running, true);
    await dev.unregister();
    await c.closedByServer();
    assert.equal(screens.vncAddress(dev.name), undefined);
    await assert.rejects(RfbClient.open(address), /ECONNREFUSED/);
    assert.equal(feed.running, false);
  });
});
