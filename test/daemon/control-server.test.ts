/**
 * The control server in process, spoken to in raw lines: answers keep
 * their order, a request that is not one is answered and the connection
 * goes on, a line past the limit ends the connection and nothing sent
 * after it runs, and a socket file is taken over only from a dead daemon.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ControlServer } from '../../src/daemon/control-server.js';
import { Logger } from '../../src/daemon/log.js';
import { LineDecoder, MAX_LINE_BYTES } from '../../src/daemon/protocol.js';

const dir = mkdtempSync(join(tmpdir(), 'uvfio-ctl-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const quiet = new Logger(() => {});

/** A server whose handler records each op and echoes it back, after `delayOf(op)` turns of the event loop. */
async function serve(delayOf: (op: string) => number = () => 0): Promise<{ server: ControlServer; ran: string[] }> {
  const ran: string[] = [];
  const server = await ControlServer.listen({
    path: join(dir, `c${n++}.sock`),
    log: quiet,
    handle: async (op) => {
      for (let i = delayOf(op); i > 0; i--) await new Promise((r) => setImmediate(r));
      ran.push(op);
      return { op };
    },
  });
  return { server, ran };
}

/** A raw connection that collects answer lines and says when it ended. */
async function open(path: string): Promise<{ socket: Socket; lines: unknown[]; next(count: number): Promise<unknown[]>; ended: Promise<void> }> {
  const socket = createConnection(path);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines: unknown[] = [];
  const decoder = new LineDecoder();
  let wake = () => {};
  socket.on('data', (chunk: Buffer) => {
    lines.push(...decoder.push(chunk).map((l) => JSON.parse(l) as unknown));
    wake();
  });
  // An error (EPIPE, say) shows as a failed assertion, not as an uncaught 'error' event.
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    setTimeout(() => reject(new Error('the server did not end the connection within 5 s')), 5_000).unref();
  });
  ended.catch(() => {}); // only the tests that wait for the end care
  const next = async (count: number) => {
    const deadline = Date.now() + 5_000;
    while (lines.length < count) {
      assert.ok(Date.now() < deadline, `only ${lines.length} of ${count} answers within 5 s`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return lines.slice(0, count);
  };
  return { socket, lines, next, ended };
}

const req = (id: number, op: string) => `${JSON.stringify({ v: 1, id, op })}\n`;

describe('ControlServer', () => {
  it('makes a 0600 socket and answers the requests of a connection in order, a slow one included', async () => {
    const { server } = await serve((op) => (op === 'slow' ? 20 : 0));
    try {
      assert.equal(statSync(server.path).mode & 0o777, 0o600);
      const c = await open(server.path);
      c.socket.write(req(1, 'slow') + req(2, 'fast'));
      assert.deepEqual(await c.next(2), [
        { id: 1, ok: true, result: { op: 'slow' } },
        { id: 2, ok: true, result: { op: 'fast' } },
      ]);
      c.socket.destroy();
    } finally {
      await server.close();
    }
  });

  it('answers a line that is not a request with EPROTO and keeps the connection', async () => {
    const { server, ran } = await serve();
    try {
      const c = await open(server.path);
      c.socket.write(`not json\n[]\n${JSON.stringify({ v: 2, id: 3, op: 'x' })}\n${req(4, 'after')}`);
      const answers = (await c.next(4)) as Array<{ id: number; ok: boolean; error?: { code: string } }>;
      assert.deepEqual(
        answers.map((a) => [a.id, a.ok, a.error?.code]),
        [
          [0, false, 'EPROTO'],
          [0, false, 'EPROTO'],
          [3, false, 'EPROTO'],
          [4, true, undefined],
        ],
      );
      assert.deepEqual(ran, ['after']);
      c.socket.destroy();
    } finally {
      await server.close();
    }
  });

  it('a line past the limit: the queued answers, then EMSGSIZE, then the end; nothing sent after it runs', async () => {
    const { server, ran } = await serve((op) => (op === 'before' ? 20 : 0));
    try {
      const c = await open(server.path);
      c.socket.write(req(1, 'before'));
      // The oversized line is never finished: its tail, and the request
      // after it, come as a line of their own.
      c.socket.write(Buffer.alloc(MAX_LINE_BYTES + 1, 0x41));
      c.socket.write(`\n${req(2, 'smuggled')}`);
      await c.ended;
      const answers = c.lines as Array<{ id: number; ok: boolean; error?: { code: string } }>;
      assert.deepEqual(
        answers.map((a) => [a.id, a.ok, a.error?.code]),
        [
          [1, true, undefined],
          [0, false, 'EMSGSIZE'],
        ],
      );
      // Give a wrongly queued request every chance to run before looking.
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(ran, ['before']);
      c.socket.destroy();
    } finally {
      await server.close();
    }
  });

  it('takes over a socket file nobody answers on, and refuses one a live server answers on', async () => {
    const path = join(dir, `c${n++}.sock`);
    writeFileSync(path, 'left behind');
    const first = await ControlServer.listen({ path, log: quiet, handle: async () => ({}) });
    try {
      assert.ok(statSync(path).isSocket());
      await assert.rejects(ControlServer.listen({ path, log: quiet, handle: async () => ({}) }), {
        code: 'EADDRINUSE',
        message: /another uvfio daemon/,
      });
      assert.ok(statSync(path).isSocket(), 'the live socket stays');
      const c = await open(path);
      c.socket.write(req(1, 'ping'));
      assert.deepEqual(await c.next(1), [{ id: 1, ok: true, result: {} }]);
      c.socket.destroy();
    } finally {
      await first.close();
    }
  });

  it('of two servers listening on one path at once, exactly one wins', async () => {
    const path = join(dir, `c${n++}.sock`);
    const results = await Promise.allSettled([0, 1].map(() => ControlServer.listen({ path, log: quiet, handle: async () => ({}) })));
    const won = results.filter((r): r is PromiseFulfilledResult<ControlServer> => r.status === 'fulfilled');
    try {
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
      assert.ok(results.some((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'EADDRINUSE'));
    } finally {
      for (const w of won) await w.value.close();
    }
  });
});
