import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { VfioError } from '../../../src/base/errors.js';
import { close, listenUnix, openFdCount } from '../../../src/native/index.js';
import { UnixServer } from '../../../src/vfio-user/transport/unix-server.js';
import { UnixSocket } from '../../../src/vfio-user/transport/unix-socket.js';
import { runScript, tempDir } from '../../native/support.js';
import { until } from '../../support/until.js';

const UNIX_SERVER = new URL('../../../src/vfio-user/transport/unix-server.js', import.meta.url).href;

const tmp = tempDir();
after(() => tmp.done());

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

test('accepts many clients, each one served; close unlinks the socket', async () => {
  const before = openFdCount();
  const path = tmp.path('many.sock');
  const server = UnixServer.listen(path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const accepted: UnixSocket[] = [];
  server.onConnection = (sock) => {
    accepted.push(sock);
    sock.onData = (chunk) => sock.write(chunk);
  };
  const clients: UnixSocket[] = [];
  const answers = new Map<number, number>();
  const N = 100; // more than the listen backlog spreads over several events
  for (let i = 0; i < N; i++) {
    const c = UnixSocket.connect(path);
    c.onData = (chunk) => answers.set(i, chunk[0]!);
    c.write(new Uint8Array([i]));
    clients.push(c);
  }
  await until(() => answers.size === N, 'every client to be answered');
  for (let i = 0; i < N; i++) assert.equal(answers.get(i), i);
  assert.equal(accepted.length, N);
  server.close();
  server.close();
  assert.equal(existsSync(path), false);
  assert.throws(() => UnixSocket.connect(path), isCode('ENOENT'));
  for (const c of clients) c.destroy();
  await until(() => accepted.every((s) => s.closed), 'the accepted sockets to see EOF');
  assert.equal(openFdCount(), before);
});

test('a stale socket file is replaced; a live server or a non-socket is not', () => {
  const path = tmp.path('stale.sock');
  close(listenUnix(path)); // a crashed server leaves its file behind
  assert.equal(existsSync(path), true);
  const server = UnixServer.listen(path);
  assert.throws(
    () => UnixServer.listen(path),
    (e: unknown) => isCode('EADDRINUSE')(e) && /already listening/.test(String(e)),
  );
  assert.equal(existsSync(path), true, 'the live server keeps its socket');
  server.close();

  const file = tmp.path('plain-file');
  writeFileSync(file, 'precious');
  assert.throws(
    () => UnixServer.listen(file),
    (e: unknown) => isCode('EADDRINUSE')(e) && /not a socket/.test(String(e)),
  );
  assert.equal(statSync(file).size, 8, 'left alone');
});

test("close() never unlinks a successor's socket", () => {
  const path = tmp.path('succ.sock');
  const first = UnixServer.listen(path);
  renameSync(path, tmp.path('moved.sock'));
  const second = UnixServer.listen(path);
  first.close();
  assert.equal(existsSync(path), true, "the second server's file stays");
  second.close();
  assert.equal(existsSync(path), false);
});

test('the default onConnection closes the connection', async () => {
  const path = tmp.path('default.sock');
  const server = UnixServer.listen(path);
  const c = UnixSocket.connect(path);
  let closed = 0;
  c.onClose = () => closed++;
  await until(() => closed === 1, 'the server to hang up');
  server.close();
});

test('an unref server lets the process exit; a ref one keeps it', () => {
  const script = (body: string) => `
    import { UnixServer } from '${UNIX_SERVER}';
    const server = UnixServer.listen(${JSON.stringify(tmp.path('exit.sock'))});
    process.on('exit', () => server.close());
    ${body}
  `;
  const unref = runScript(script('server.unref();'), 5000);
  assert.equal(unref.status, 0, unref.stderr);
  const held = runScript(script('setTimeout(() => { console.log("still up"); process.exit(0); }, 200).unref();'), 5000);
  assert.match(held.stdout, /still up/, held.stderr);
  assert.equal(existsSync(tmp.path('exit.sock')), false);
});
