// The uvfio console page: one WebSocket to the daemon (see
// src/console/page-session.ts for the messages), tables built from the
// pushed state, and a canvas per display device fed with RGBA tiles.
// Plain JavaScript, served as it is: no build step, no dependency.

const TILE_BATCH = 1;

/** @type {WebSocket | null} */
let ws = null;
let nextOpId = 1;
let retryMs = 500;
/** @type {Map<number, (reply: any) => void>} */
const pendingOps = new Map();
/** uuid → screen card state */
const screens = new Map();
/** slot → uuid */
const slots = new Map();
/** uuids the page wants to watch (visible cards) */
const wanted = new Set();

const $ = (id) => document.getElementById(id);

// ---- connection --------------------------------------------------------------

function connect() {
  setLink('connecting', 'connecting…');
  ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    retryMs = 500;
    setLink('up', 'live');
    for (const uuid of wanted) send({ t: 'watch', uuid });
  };
  ws.onmessage = (ev) => (typeof ev.data === 'string' ? onJson(JSON.parse(ev.data)) : onTiles(ev.data));
  ws.onclose = () => {
    setLink('down', 'disconnected; retrying…');
    for (const [, reply] of pendingOps) reply({ ok: false, error: { code: 'ECONNRESET', message: 'the connection to the daemon was lost' } });
    pendingOps.clear();
    slots.clear();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10_000);
  };
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

/** Asks the daemon to do `op`; resolves with the reply. */
function request(op, args) {
  return new Promise((resolve) => {
    const id = nextOpId++;
    pendingOps.set(id, resolve);
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      pendingOps.delete(id);
      resolve({ ok: false, error: { code: 'ENOTCONN', message: 'not connected to the daemon' } });
      return;
    }
    send({ t: 'op', id, op, args });
  });
}

function setLink(state, text) {
  const el = $('link');
  el.dataset.state = state;
  el.textContent = text;
}

function onJson(msg) {
  switch (msg.t) {
    case 'hello':
      return;
    case 'state':
      return renderState(msg);
    case 'reply': {
      const resolve = pendingOps.get(msg.id);
      pendingOps.delete(msg.id);
      resolve?.(msg);
      return;
    }
    case 'frame':
      return onFrame(msg);
    case 'ended':
      slots.delete(msg.slot);
      return;
    case 'screen-error': {
      const s = screens.get(msg.uuid);
      if (s) showBlank(s, `${msg.error.code}: ${msg.error.message}`);
      return;
    }
    case 'error':
      return note(`${msg.error.code}: ${msg.error.message}`, true);
  }
}

// ---- messages to the operator ------------------------------------------------

function note(text, isError = false) {
  const p = document.createElement('p');
  p.className = isError ? 'error' : 'ok';
  p.textContent = text;
  const box = $('messages');
  box.prepend(p);
  while (box.children.length > 5) box.lastChild.remove();
  setTimeout(() => p.remove(), isError ? 15_000 : 5_000);
}

async function act(button, op, args, done) {
  button.disabled = true;
  const reply = await request(op, args);
  button.disabled = false;
  if (reply.ok) note(done(reply.result));
  else note(`${op} failed: ${reply.error.code}: ${reply.error.message}`, true);
}

// ---- state -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function button(label, action, onClick) {
  const b = el('button', { type: 'button', 'data-action': action }, label);
  b.addEventListener('click', () => onClick(b));
  return b;
}

function renderState(state) {
  $('daemon').textContent = `${state.daemon.version} · pid ${state.daemon.pid}`;
  renderTypes(state.types);
  renderDevices(state.devices);
  renderScreens(state.devices.filter((d) => d.active && d.display));
  $('problems').textContent = state.problems.join(' ');
}

function renderTypes(types) {
  const body = $('types').tBodies[0];
  body.replaceChildren(
    ...types.map((t) =>
      el(
        'tr',
        { 'data-parent': t.parent, 'data-type': t.type },
        el('td', {}, t.parent),
        el('td', {}, t.type),
        el('td', {}, t.name),
        el('td', { class: 'num' }, String(t.availableInstances)),
        el('td', {}, t.deviceApi),
        el(
          'td',
          { class: 'actions' },
          button('Start', 'start', (b) =>
            act(b, 'start', { parent: t.parent, type: t.type }, (r) => `started ${r.device.mdevType} ${r.device.uuid}`),
          ),
          button('Define', 'define', (b) =>
            act(b, 'define', { parent: t.parent, type: t.type }, (r) => `defined ${r.device.mdevType} ${r.device.uuid}`),
          ),
        ),
      ),
    ),
  );
}

function renderDevices(devices) {
  $('no-devices').hidden = devices.length > 0;
  $('devices').hidden = devices.length === 0;
  const body = $('devices').tBodies[0];
  body.replaceChildren(
    ...devices.map((d) => {
      const actions = el('td', { class: 'actions' });
      if (d.active) actions.append(button('Stop', 'stop', (b) => act(b, 'stop', { uuid: d.uuid }, () => `stopped ${d.uuid}`)));
      else actions.append(button('Start', 'start', (b) => act(b, 'start', { uuid: d.uuid, parent: d.parent }, () => `started ${d.uuid}`)));
      if (d.defined) {
        actions.append(button('Undefine', 'undefine', (b) => act(b, 'undefine', { uuid: d.uuid, parent: d.parent }, () => `undefined ${d.uuid}`)));
      } else {
        actions.append(button('Define', 'define', (b) => act(b, 'define', { uuid: d.uuid }, () => `defined ${d.uuid} as it runs`)));
      }
      return el(
        'tr',
        { 'data-uuid': d.uuid, 'data-state': d.active ? 'running' : 'stopped' },
        el('td', { class: 'mono' }, d.uuid),
        el('td', {}, `${d.parent} / ${d.mdevType}`),
        el('td', {}, d.active ? 'running' : 'defined'),
        el('td', {}, d.defined ? d.start : 'transient'),
        el('td', { class: 'mono small' }, d.socket ?? '–'),
        el('td', { class: 'mono' }, d.vnc ?? '–'),
        actions,
      );
    }),
  );
}

// ---- screens -----------------------------------------------------------------

const visibility = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const uuid = e.target.dataset.uuid;
    if (e.isIntersecting && !document.hidden) watch(uuid);
    else unwatch(uuid);
  }
});

document.addEventListener('visibilitychange', () => {
  for (const [uuid, s] of screens) {
    if (document.hidden) unwatch(uuid);
    else if (isOnScreen(s.card)) watch(uuid);
  }
});

function isOnScreen(node) {
  const r = node.getBoundingClientRect();
  return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
}

function watch(uuid) {
  if (wanted.has(uuid)) return;
  wanted.add(uuid);
  send({ t: 'watch', uuid });
}

function unwatch(uuid) {
  if (!wanted.delete(uuid)) return;
  send({ t: 'unwatch', uuid });
}

function renderScreens(devices) {
  $('no-screens').hidden = devices.length > 0;
  const grid = $('screens');
  const live = new Set(devices.map((d) => d.uuid));
  for (const [uuid, s] of screens) {
    if (live.has(uuid)) continue;
    visibility.unobserve(s.card);
    s.card.remove();
    screens.delete(uuid);
    unwatch(uuid);
  }
  for (const d of devices) {
    let s = screens.get(d.uuid);
    if (!s) {
      const canvas = el('canvas', { width: 640, height: 480, 'data-uuid': d.uuid });
      const mode = el('span', { class: 'mode' }, 'waiting for the first frame');
      const blank = el('div', { class: 'blank', hidden: true });
      const shot = el('a', { href: `/api/screenshot?uuid=${encodeURIComponent(d.uuid)}`, download: `${d.uuid}.png` }, 'PNG');
      const card = el(
        'figure',
        { class: 'screen', 'data-uuid': d.uuid },
        el('div', { class: 'frame' }, canvas, blank),
        el('figcaption', {}, el('strong', {}, `${d.parent}/${d.mdevType}`), ' ', el('span', { class: 'mono small' }, d.uuid), el('br'), mode, ' ', el('span', { class: 'vnc mono' }), ' ', shot),
      );
      s = { card, canvas, ctx: canvas.getContext('2d'), mode, blank, vnc: card.querySelector('.vnc') };
      screens.set(d.uuid, s);
      grid.append(card);
      visibility.observe(card);
    }
    s.vnc.textContent = d.vnc ? `VNC ${d.vnc}` : '';
  }
}

function onFrame(msg) {
  slots.set(msg.slot, msg.uuid);
  const s = screens.get(msg.uuid);
  if (!s) return;
  s.canvas.width = msg.width;
  s.canvas.height = msg.height;
  s.canvas.dataset.width = String(msg.width);
  s.canvas.dataset.height = String(msg.height);
  s.ctx.fillStyle = '#000';
  s.ctx.fillRect(0, 0, msg.width, msg.height);
  if (msg.blank !== undefined) {
    showBlank(s, msg.blank);
  } else {
    s.blank.hidden = true;
    s.canvas.dataset.signal = 'yes';
    s.mode.textContent = `${msg.width}×${msg.height} ${msg.format}`;
  }
}

function showBlank(s, why) {
  s.canvas.dataset.signal = 'no';
  s.blank.hidden = false;
  s.blank.textContent = `no picture: ${why}`;
  s.mode.textContent = 'no picture';
}

function onTiles(buffer) {
  const view = new DataView(buffer);
  if (view.getUint8(0) !== TILE_BATCH) return;
  const uuid = slots.get(view.getUint16(2, true));
  const s = uuid && screens.get(uuid);
  const count = view.getUint32(4, true);
  let at = 8;
  for (let i = 0; i < count; i++) {
    const x = view.getUint16(at, true);
    const y = view.getUint16(at + 2, true);
    const w = view.getUint16(at + 4, true);
    const h = view.getUint16(at + 6, true);
    at += 8;
    if (s) s.ctx.putImageData(new ImageData(new Uint8ClampedArray(buffer, at, w * h * 4), w, h), x, y);
    at += w * h * 4;
  }
  if (s) s.canvas.dataset.tiles = String(Number(s.canvas.dataset.tiles ?? 0) + count);
}

connect();
