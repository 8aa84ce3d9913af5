/**
 * The web console's server over a real service (store, bus, the built-in
 * parents) through real sockets: the token on every request, the origin
 * on the WebSocket, the state, the page's requests with the command
 * line's checks and errors, live screens, limits, and no work while no
 * page is open.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioCore } from '../../src/core/index.js';
import { ConsoleServer } from '../../src/console/console-server.js';
import { CONSOLE_LIMITS } from '../../src/console/limits.js';
import { parseListenAddress } from '../../src/console/listen-address.js';
import { Screens } from '../../src/console/screens.js';
import { builtinParents } from '../../src/daemon/parents.js';
import { MdevService } from '../../src/daemon/service.js';
import { DefinitionStore } from '../../src/daemon/store.js';
import type { MdpyDevice } from '../../src/drivers/mdpy/index.js';
import { MdevBus } from '../../src/mdev/index.js';
import { until } from '../support/until.js';
import { MemoryLog, fillRect } from './helpers.js';
import { PageClient, type PageMessage } from './page-client.js';

let core: VfioCore;
let bus: MdevBus;
let store: DefinitionStore;
let service: MdevService;
let screens: Screens;
let web: ConsoleServer;
let base: string;
let token: string;
const log = new MemoryLog();
const pages: PageClient[] = [];

before(async () => {
  core = new VfioCore();
  screens = new Screens({ core, log, vnc: false, intervalMs: 10 });
  bus = new MdevBus({ core, serve: (device) => screens.add(device) });
  for (const p of builtinParents()) bus.registerParent(p);
  store = DefinitionStore.open(':memory:');
  service = new MdevService({ store, bus });
  web = await ConsoleServer.listen({ address: parseListenAddress('0'), service, screens, log, stateIntervalMs: 50 });
  base = `http://${web.address}`;
  token = web.token;
});
after(async () => {
  for (const p of pages) p.close();
  await web.close();
  await screens.close();
  for (const p of bus.parents()) await bus.unregisterParent(p);
  store.close();
});

async function page(headers: Record<string, string> = { Authorization: `Bearer ${token}` }): Promise<PageClient> {
  const p = await PageClient.open(`ws://${web.address}/ws`, headers);
  pages.push(p);
  return p;
}

const bearer = () => ({ Authorization: `Bearer ${token}` });

describe('console server: access', () => {
  it('listens on loopback by default, with a long random token', () => {
    assert.equal(web.host, '127.0.0.1');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(web.url, `http://127.0.0.1:${web.port}/?token=${token}`);
  });

  it('answers nothing without the token: page, assets, API', async () => {
    for (const path of ['/', '/console.js', '/console.css', '/api/state', '/api/screenshot?uuid=x', '/nothing']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'EACCES');
      assert.match(body.error.message, /uvfio console/);
    }
    const wrong = await fetch(`${base}/api/state`, { headers: { Authorization: `Bearer ${token.slice(1)}x` } });
    assert.equal(wrong.status, 401);
    const cookieOfOtherPort = await fetch(`${base}/api/state`, { headers: { Cookie: `uvfio-console-1=${token}` } });
    assert.equal(cookieOfOtherPort.status, 401);
  });

  it('takes the token from the URL once, as an HttpOnly SameSite cookie, and drops it from the address', async () => {
    const res = await fetch(`${base}/?token=${token}`, { redirect: 'manual' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/');
    const cookie = res.headers.get('set-cookie')!;
    assert.equal(cookie, `uvfio-console-${web.port}=${token}; HttpOnly; SameSite=Strict; Path=/`);
    const pageRes = await fetch(`${base}/`, { headers: { Cookie: cookie.split(';')[0]! } });
    assert.equal(pageRes.status, 200);
    assert.match(pageRes.headers.get('content-type')!, /text\/html/);
    assert.match(pageRes.headers.get('content-security-policy')!, /default-src 'self'.*frame-ancestors 'none'/);
    assert.match(await pageRes.text(), /<script type="module" src="\/console.js">/);
    const js = await fetch(`${base}/console.js`, { headers: { Cookie: cookie.split(';')[0]! } });
    assert.match(js.headers.get('content-type')!, /text\/javascript/);
  });

  it('serves only GET', async () => {
    const res = await fetch(`${base}/api/state`, { method: 'POST', headers: bearer(), body: '{}' });
    assert.equal(res.status, 405);
  });

  it('refuses a WebSocket without the token, from another origin, or past the page limit', async () => {
    await assert.rejects(PageClient.open(`ws://${web.address}/ws`), /HTTP 401/);
    await assert.rejects(PageClient.open(`ws://${web.address}/ws?token=nope`), /HTTP 401/);
    await assert.rejects(PageClient.open(`ws://${web.address}/ws`, { ...bearer(), Origin: 'http://127.0.0.1:1' }), /HTTP 403/);
    await assert.rejects(PageClient.open(`ws://${web.address}/elsewhere`, bearer()), /HTTP 404/);
    const same = await page({ ...bearer(), Origin: `http://${web.address}` });
    const held = [same];
    while (held.length < CONSOLE_LIMITS.maxPages) held.push(await page());
    await assert.rejects(page(), /HTTP 503/);
    for (const p of held) p.close();
    await until(() => web.pageCount === 0, 'the pages to be gone');
  });
});

describe('console server: state and requests', () => {
  it('shows the types with available instances, and every device', async () => {
    const res = await fetch(`${base}/api/state`, { headers: bearer() });
    const state = (await res.json()) as { types: Array<{ parent: string; type: string; availableInstances: number }>; devices: unknown[] };
    assert.deepEqual([...new Set(state.types.map((t) => t.parent))], ['mtty', 'mdpy', 'mbochs', 'virtio-blk']);
    assert.ok(state.types.every((t) => t.availableInstances > 0));
    assert.deepEqual(state.devices, []);
  });

  it("starts, defines, undefines and stops from the page, with the command line's checks and errors", async () => {
    const p = await page();
    assert.equal((await p.next((m) => m.t === 'hello')).t, 'hello');
    await p.next((m) => m.t === 'state');

    const started = await p.op('start', { parent: 'mdpy', type: 'mdpy-vga' });
    assert.equal(started.ok, true);
    const uuid = (started.result as { device: { uuid: string } }).device.uuid;
    const shown = await p.next((m) => m.t === 'state' && devices(m).some((d) => d.uuid === uuid));
    const dev = devices(shown).find((d) => d.uuid === uuid)!;
    assert.deepEqual([dev.active, dev.display, dev.defined, dev.mdevType], [true, true, false, 'mdpy-vga']);

    // The same errors the command line gets, word for word, from the same service.
    const bad = await p.op('start', { parent: 'mdpy', type: 'mdpy-nope' });
    let direct = '';
    await service.handle('start', { parent: 'mdpy', type: 'mdpy-nope' }).catch((e: Error) => (direct = e.message));
    assert.deepEqual(bad.error, { code: 'ENOENT', message: direct });
    assert.match(direct, /parent mdpy has no type "mdpy-nope"/);
    const missing = await p.op('stop', { uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' });
    assert.equal((missing.error as { code: string }).code, 'ENODEV');
    const notMine = await p.op('modify', { uuid, auto: true });
    assert.equal((notMine.error as { code: string }).code, 'EINVAL');
    const badArgs = await p.op('start', { parent: 'mdpy', type: 'mdpy-vga', extra: 1 });
    assert.match((badArgs.error as { message: string }).message, /unknown argument "extra"/);

    assert.equal((await p.op('define', { uuid })).ok, true);
    await p.next((m) => m.t === 'state' && devices(m).some((d) => d.uuid === uuid && d.defined));
    assert.equal((await p.op('stop', { uuid })).ok, true);
    await p.next((m) => m.t === 'state' && devices(m).some((d) => d.uuid === uuid && !d.active));
    assert.equal(bus.device(uuid), undefined);
    assert.equal((await p.op('start', { uuid })).ok, true, 'a defined device starts by UUID');
    assert.ok(bus.device(uuid));
    assert.equal((await p.op('undefine', { uuid })).ok, true);
    assert.equal((await p.op('stop', { uuid })).ok, true);
    await p.next((m) => m.t === 'state' && !devices(m).some((d) => d.uuid === uuid));
    p.close();
  });
});

describe('console server: screens', () => {
  it('sends a watched screen as a frame and RGBA tiles, then only what changes; unwatched, the feed stops', async () => {
    const { uuid, dev } = await startMdpy();
    const p = await page();
    p.send({ t: 'watch', uuid });
    const frame = await p.next((m) => m.t === 'frame' && m.uuid === uuid);
    assert.deepEqual([frame.width, frame.height, frame.format, frame.blank], [640, 480, 'XRGB8888', undefined]);
    const canvas = p.canvases.get(frame.slot as number)!;
    await until(() => canvas.tiles === 10 * 8, 'every tile of the first frame', 5000);
    // mdpy's power-on grey ramp.
    const level = Math.floor((300 * 255) / 480);
    assert.deepEqual(canvas.at(17, 300), [level, level, level, 255]);

    fillRect(dev.framebuffer, 640 * 4, 100, 100, 10, 10, [12, 34, 56]);
    await until(() => canvas.at(105, 105)[0] === 12, 'the written pixels', 5000);
    assert.deepEqual(canvas.at(105, 105), [12, 34, 56, 255]);
    assert.equal(canvas.tiles, 80 + 1, 'one more tile, no more');

    const feed = screens.feed(uuid);
    assert.equal(feed.running, true);
    p.send({ t: 'unwatch', uuid });
    await until(() => !feed.running, 'the feed to stop');
    p.close();
    await service.handle('stop', { uuid });
  });

  it('answers a screen that cannot be shown with a reason', async () => {
    const p = await page();
    const { device } = (await service.handle('start', { parent: 'mtty', type: 'mtty-1' })) as { device: { uuid: string } };
    p.send({ t: 'watch', uuid: device.uuid });
    const err = await p.next((m) => m.t === 'screen-error');
    assert.deepEqual((err.error as { code: string }).code, 'ENOTTY');
    p.send({ t: 'watch', uuid: 'nothing' });
    assert.equal(((await p.next((m) => m.t === 'screen-error')).error as { code: string }).code, 'ENODEV');
    await service.handle('stop', { uuid: device.uuid });
    p.close();
  });

  it('tells the page when a watched device stops', async () => {
    const { uuid } = await startMdpy();
    const p = await page();
    p.send({ t: 'watch', uuid });
    await p.next((m) => m.t === 'frame');
    await service.handle('stop', { uuid });
    await p.next((m) => m.t === 'ended' && m.uuid === uuid);
    p.close();
  });

  it('serves a PNG of a screen', async () => {
    const { uuid } = await startMdpy();
    const res = await fetch(`${base}/api/screenshot?uuid=${uuid}`, { headers: bearer() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.deepEqual([...new Uint8Array(await res.arrayBuffer()).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const none = await fetch(`${base}/api/screenshot?uuid=nothing`, { headers: bearer() });
    assert.equal(none.status, 404);
    await service.handle('stop', { uuid });
  });
});

describe('console server: hostile pages and idleness', () => {
  it('a page that sends garbage gets errors, one that sends too much is closed; a bystander carries on', async () => {
    const bystander = await page();
    const { uuid, dev } = await startMdpy();
    bystander.send({ t: 'watch', uuid });
    const frame = await bystander.next((m) => m.t === 'frame');
    const canvas = bystander.canvases.get(frame.slot as number)!;

    const rude = await page();
    rude.ws.send('not json');
    assert.equal(((await rude.next((m) => m.t === 'error')).error as { code: string }).code, 'EPROTO');
    rude.ws.send(Buffer.from([1, 2, 3]));
    assert.match(((await rude.next((m) => m.t === 'error')).error as { message: string }).message, /JSON text/);
    rude.send([1, 2]);
    rude.send({ t: 'rm -rf' });
    rude.send({ t: 'watch' });
    for (let i = 0; i < 3; i++) await rude.next((m) => m.t === 'error');
    rude.ws.send('x'.repeat(CONSOLE_LIMITS.maxPageMessageBytes + 1));
    await until(() => rude.closeCode !== undefined, 'the page to be closed', 5000);
    assert.equal(rude.closeCode, 1009, 'message too big');

    fillRect(dev.framebuffer, 640 * 4, 0, 0, 1, 1, [1, 2, 3]);
    await until(() => canvas.at(0, 0)[2] === 3, 'the bystander to see the change', 5000);
    bystander.close();
    await service.handle('stop', { uuid });
  });

  it('a page that stops answering pings is dropped; one that answers stays', async () => {
    const quick = await ConsoleServer.listen({ address: parseListenAddress('0'), service, screens, log, stateIntervalMs: 20, heartbeatMs: 60 });
    try {
      const auth = { Authorization: `Bearer ${quick.token}` };
      const alive = await PageClient.open(`ws://${quick.address}/ws`, auth);
      const silent = await PageClient.open(`ws://${quick.address}/ws`, auth, false);
      pages.push(alive, silent);
      await until(() => silent.closeCode !== undefined, 'the silent page to be dropped');
      assert.equal(silent.closeCode, 1006, 'terminated, no close handshake');
      assert.equal(alive.closeCode, undefined);
      assert.equal(quick.pageCount, 1);
      assert.ok(log.lines.some((l) => /did not answer a ping/.test(l.msg)));
    } finally {
      await quick.close();
    }
  });

  it('with no page open, no state is taken and no screen is looked at', async () => {
    const { uuid } = await startMdpy();
    const p = await page();
    p.send({ t: 'watch', uuid });
    await p.next((m) => m.t === 'frame');
    await p.next((m) => m.t === 'state');
    p.close();
    await until(() => web.pageCount === 0, 'the page to be gone');
    const pushes = web.pushes;
    const feed = screens.feed(uuid);
    const looks = feed.looks;
    await sleep(300);
    assert.equal(web.pushes, pushes, 'no state push without a page');
    assert.equal(feed.running, false);
    assert.equal(feed.looks, looks, 'no look without a viewer');
    await service.handle('stop', { uuid });
  });
});

function devices(m: PageMessage): Array<{ uuid: string; active: boolean; display: boolean; defined: boolean; mdevType: string }> {
  return m.devices as ReturnType<typeof devices>;
}

async function startMdpy(): Promise<{ uuid: string; dev: MdpyDevice }> {
  const { device } = (await service.handle('start', { parent: 'mdpy', type: 'mdpy-vga' })) as { device: { uuid: string } };
  return { uuid: device.uuid, dev: bus.device(device.uuid)!.device as MdpyDevice };
}
