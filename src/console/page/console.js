// The uvfio console page: one WebSocket to the daemon (see
// src/console/page-session.ts for the messages), tables built from the
// pushed state, and a canvas per display device fed with RGBA tiles.
// Plain JavaScript, served as it is: no build step, no dependency.

const TILE_BATCH = 1;
/** Samples of each device's rates kept for its sparkline (one a second). */
const HISTORY = 60;

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
/** uuid → { messages: number[], interrupts: number[] } */
const history = new Map();
/** "uuid/clientId" of the DMA lists the operator opened */
const openDma = new Set();

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
  record(state.devices);
  renderTypes(state.types);
  renderDevices(state.devices);
  renderScreens(state.devices.filter((d) => d.active && d.display));
  $('problems').textContent = state.problems.join(' ');
}

/** "parent/type" → { row, key }, kept while the type's facts stay. */
const typeRows = new Map();

function renderTypes(types) {
  const rows = types.map((t) => {
    const id = `${t.parent}/${t.type}`;
    const key = JSON.stringify(t);
    const known = typeRows.get(id);
    if (known && known.key === key) return known.row;
    const row = typeRow(t);
    typeRows.set(id, { row, key });
    return row;
  });
  $('types').tBodies[0].replaceChildren(...rows);
}

function typeRow(t) {
  return el(
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
      button('Start', 'start', (b) => act(b, 'start', { parent: t.parent, type: t.type }, (r) => `started ${r.device.mdevType} ${r.device.uuid}`)),
      button('Define', 'define', (b) => act(b, 'define', { parent: t.parent, type: t.type }, (r) => `defined ${r.device.mdevType} ${r.device.uuid}`)),
    ),
  );
}

/** uuid → { row, key }: rows are kept while their device's facts stay, so a button is never swapped under the pointer. */
const deviceRows = new Map();

function renderDevices(devices) {
  $('no-devices').hidden = devices.length > 0;
  $('devices').hidden = devices.length === 0;
  const rows = devices.map((d) => {
    const key = JSON.stringify([d.active, d.defined, d.start, d.parent, d.mdevType, d.socket, d.vnc]);
    const known = deviceRows.get(d.uuid);
    if (known && known.key === key) {
      known.row.cells[6].replaceWith(clientsCell(d));
      return known.row;
    }
    const row = deviceRow(d);
    deviceRows.set(d.uuid, { row, key });
    return row;
  });
  const live = new Set(devices.map((d) => d.uuid));
  for (const uuid of deviceRows.keys()) if (!live.has(uuid)) deviceRows.delete(uuid);
  $('devices').tBodies[0].replaceChildren(...rows);
}

function deviceRow(d) {
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
    clientsCell(d),
    actions,
  );
}

// ---- clients and rates -------------------------------------------------------

/** Adds each running device's summed rates to its history; forgets devices gone. */
function record(devices) {
  const live = new Set();
  for (const d of devices) {
    if (!d.active || !d.clients) continue;
    live.add(d.uuid);
    let h = history.get(d.uuid);
    if (!h) history.set(d.uuid, (h = { messages: [], interrupts: [] }));
    const sum = (key) => d.clients.reduce((n, c) => n + (c.rates ? c.rates[key] : 0), 0);
    for (const [key, list] of [['messages', h.messages], ['interrupts', h.interrupts]]) {
      list.push(sum(key));
      if (list.length > HISTORY) list.shift();
    }
  }
  for (const uuid of history.keys()) if (!live.has(uuid)) history.delete(uuid);
}

function rate(v, unit) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)} M${unit}/s`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k${unit}/s`;
  return `${v} ${unit}/s`;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}

/** Two lines over the last minute: messages (accent) and interrupts (green) per second. */
function sparkline(h) {
  const c = el('canvas', { width: 120, height: 28, class: 'spark', title: 'messages (blue) and interrupts (green) per second, last minute' });
  const g = c.getContext('2d');
  const top = Math.max(1, ...h.messages, ...h.interrupts);
  for (const [list, colour] of [[h.messages, '#2a6fdb'], [h.interrupts, '#2e7d32']]) {
    g.strokeStyle = colour;
    g.beginPath();
    list.forEach((v, i) => {
      const x = (i / (HISTORY - 1)) * (c.width - 1);
      const y = c.height - 1 - (v / top) * (c.height - 2);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }
  return c;
}

function clientsCell(d) {
  const td = el('td', { class: 'clients' });
  if (!d.active || !d.clients) return td;
  if (d.clients.length === 0) {
    td.append(el('span', { class: 'empty' }, 'no client'));
    return td;
  }
  const h = history.get(d.uuid);
  if (h) td.append(sparkline(h));
  for (const c of d.clients) {
    const who = el('div', { class: 'client', 'data-client': String(c.id), 'data-pid': String(c.pid) });
    const command = c.command ?? '(command unknown)';
    who.append(
      el('span', { class: 'mono' }, `pid ${c.pid < 0 ? '?' : c.pid}`),
      ' ',
      el('span', { class: 'mono small command', title: command }, command.length > 60 ? `${command.slice(0, 59)}…` : command),
      c.bound ? '' : el('span', { class: 'empty' }, ' (handshaking)'),
    );
    const r = c.rates;
    who.append(
      el(
        'div',
        { class: 'small rates' },
        r ? `${rate(r.messages, 'msg')} · ${rate(r.interrupts, 'irq')} · in ${bytes(r.bytesIn)}/s · out ${bytes(r.bytesOut)}/s${r.errors ? ` · ${r.errors} err/s` : ''}` : 'measuring…',
        ` · ${c.counters.messagesIn} messages, ${c.counters.interrupts} interrupts, ${c.counters.errors} errors in all`,
      ),
    );
    const key = `${d.uuid}/${c.id}`;
    const dma = el('details', { class: 'small dma', open: openDma.has(key) });
    dma.addEventListener('toggle', () => (dma.open ? openDma.add(key) : openDma.delete(key)));
    dma.append(el('summary', {}, `DMA: ${c.dma.count} mapping${c.dma.count === 1 ? '' : 's'}, ${bytes(c.dma.bytes)}`));
    const list = el('ul', { class: 'mono' });
    for (const m of c.dma.mappings) {
      list.append(el('li', {}, `0x${m.iova.toString(16)} +${bytes(m.size)} ${m.backing === 'fd' ? 'shared memory' : 'DMA messages'} ${m.readable ? 'r' : '-'}${m.writable ? 'w' : '-'}`));
    }
    if (c.dma.count > c.dma.mappings.length) list.append(el('li', {}, `… and ${c.dma.count - c.dma.mappings.length} more`));
    dma.append(list);
    who.append(dma);
    td.append(who);
  }
  return td;
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
