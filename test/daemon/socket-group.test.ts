/**
 * `uvfio daemon --socket-group GROUP`: a QEMU running as another user in
 * GROUP can attach to the device sockets, a user outside it cannot, and
 * the control socket stays the daemon user's unless --share-control. The
 * other users are real: child processes run under other uids (setpriv),
 * so this needs root; it is skipped otherwise.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { Daemon, fails, MAIN, ok, okJson, sandbox, type Sandbox } from '../cli/harness.js';

const root = process.getuid?.() === 0;
const setpriv = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !root ? 'needs root (other uids are real)' : !setpriv ? 'needs setpriv (util-linux)' : false;

/** A group every Debian system has, by name, and its gid. */
const GROUP = { name: 'daemon', gid: 1 };
/** A user in GROUP (QEMU, as libvirt runs it) and one outside it. */
const MEMBER = 4242;
const STRANGER = 4243;

const CLIENT_URL = pathToFileURL(join(MAIN, '..', '..', 'vfio-user', 'client.js')).href;
const U = '1a2b3c4d-0000-4000-8000-00000000c0de';

const sandboxes: Sandbox[] = [];
const daemons: Daemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  for (const s of sandboxes) s.remove();
});

async function setup(args: string[]): Promise<{ sb: Sandbox; daemon: Daemon }> {
  const sb = sandbox();
  sandboxes.push(sb);
  // mkdtemp made it 0700: let other users pass through, as /run does.
  chmodSync(sb.dir, 0o711);
  const daemon = await Daemon.start(sb, ['--no-defaults', ...args]);
  daemons.push(daemon);
  return { sb, daemon };
}

/** Runs `node args` as `uid` (with `groups`), to completion; bounded. */
function runAs(
  uid: number,
  groups: number[],
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const ids = ['--reuid', String(uid), '--regid', String(groups[0] ?? 65534), groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups'];
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [...ids, '--', process.execPath, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** As `uid`: connect to `socket` as a vfio-user client, handshake, read the device's info; prints `regions N` or the errno. */
function attachAs(uid: number, groups: number[], socket: string) {
  const script = `
    import { VfioUserClient } from ${JSON.stringify(CLIENT_URL)};
    try {
      const c = await VfioUserClient.connect(${JSON.stringify(socket)});
      console.log('regions ' + (await c.getDeviceInfo()).numRegions);
      c.close();
    } catch (err) {
      console.log('failed ' + err.code);
    }`;
  return runAs(uid, groups, ['--input-type=module', '-e', script]);
}

function modeOf(path: string): { mode: string; gid: number } {
  const st = statSync(path);
  return { mode: (st.mode & 0o7777).toString(8).padStart(4, '0'), gid: st.gid };
}

describe('uvfio daemon --socket-group', { skip }, () => {
  it('a user in the group attaches; one outside it cannot; the control socket stays owner-only', async () => {
    const { sb, daemon } = await setup(['--socket-group', GROUP.name]);
    const { socket } = await okJson<{ socket: string }>(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-1']);
    assert.deepEqual(modeOf(sb.runtimeDir), { mode: '0710', gid: GROUP.gid });
    assert.deepEqual(modeOf(join(sb.runtimeDir, 'devices')), { mode: '0750', gid: GROUP.gid });
    assert.deepEqual(modeOf(socket), { mode: '0660', gid: GROUP.gid });
    assert.equal(modeOf(join(sb.runtimeDir, 'control.sock')).mode, '0600');
    assert.equal(modeOf(sb.stateDir).mode, '0700');

    assert.match((await attachAs(MEMBER, [GROUP.gid], socket)).stdout, /^regions \d+\n$/);
    assert.equal((await attachAs(STRANGER, [], socket)).stdout, 'failed EACCES\n');
    const list = await runAs(MEMBER, [GROUP.gid], [MAIN, 'list'], { UVFIO_RUNTIME_DIR: sb.runtimeDir, UVFIO_STATE_DIR: sb.stateDir });
    assert.equal(list.code, 1);
    assert.match(list.stderr, /^uvfio: cannot reach the daemon at .*control\.sock: permission denied/);
    assert.ok(!daemon.logs.some((l) => l.level === 'warn' || l.level === 'error'), JSON.stringify(daemon.logs));
    assert.deepEqual(
      [daemon.logs.find((l) => l.msg === 'daemon starting')?.socketGroup, daemon.logs.find((l) => l.msg === 'daemon starting')?.controlShared],
      [GROUP.name, false],
    );
  });

  it('--share-control lets the group use the command line too; a gid works as well as a name', async () => {
    const { sb } = await setup(['--socket-group', String(GROUP.gid), '--share-control']);
    assert.deepEqual(modeOf(join(sb.runtimeDir, 'control.sock')), { mode: '0660', gid: GROUP.gid });
    const env = { UVFIO_RUNTIME_DIR: sb.runtimeDir, UVFIO_STATE_DIR: sb.stateDir };
    const started = await runAs(MEMBER, [GROUP.gid], [MAIN, 'start', '-u', U, '-p', 'mtty', '-t', 'mtty-1'], env);
    assert.equal(started.code, 0, started.stderr);
    assert.deepEqual(
      (await okJson<Array<{ uuid: string }>>(sb, ['list'])).map((d) => d.uuid),
      [U],
    );
    const stranger = await runAs(STRANGER, [], [MAIN, 'list'], env);
    assert.match(stranger.stderr, /permission denied/);
  });

  it('warns when a directory above the runtime directory keeps the group out', async () => {
    const sb = sandbox();
    sandboxes.push(sb); // its directory stays 0700
    const daemon = await Daemon.start(sb, ['--no-defaults', '--socket-group', GROUP.name]);
    daemons.push(daemon);
    const warned = daemon.logs.find((l) => l.level === 'warn');
    assert.equal(warned?.msg, 'the socket group cannot reach the device sockets: a directory above the runtime directory does not let it pass');
    assert.deepEqual([warned?.dir, warned?.mode], [sb.dir, '0700']);
    await ok(sb, ['list']);
  });

  it('mistakes are one error line: no such group, --share-control alone', async () => {
    const sb = sandbox();
    sandboxes.push(sb);
    assert.match(await fails(sb, ['daemon', '--socket-group', 'no-such-group-here']), /^uvfio: --socket-group: no group "no-such-group-here"$/);
    assert.match(
      await fails(sb, ['daemon', '--share-control']),
      /^uvfio: --share-control shares the control socket with --socket-group: name the group$/,
    );
  });
});
