/**
 * The daemon as a process: its sockets and their modes, one daemon per
 * runtime directory, a clean exit on SIGTERM and SIGINT.
 */
import { strict as assert } from 'node:assert';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { Daemon, MAIN, fails, sandbox, uvfio, type Sandbox } from '../cli/harness.js';

const sandboxes: Sandbox[] = [];
const daemons: Daemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  for (const s of sandboxes) s.remove();
});
function box(): Sandbox {
  const s = sandbox();
  sandboxes.push(s);
  return s;
}
async function daemon(sb: Sandbox, args: string[] = []): Promise<Daemon> {
  const d = await Daemon.start(sb, args);
  daemons.push(d);
  return d;
}

describe('uvfio daemon: process lifecycle', () => {
  it('makes private directories and a 0600 control socket, logs JSON lines, exits 0 on SIGTERM', async () => {
    const sb = box();
    const d = await daemon(sb);
    assert.equal(statSync(sb.runtimeDir).mode & 0o777, 0o700);
    assert.equal(statSync(sb.stateDir).mode & 0o777, 0o700);
    const control = join(sb.runtimeDir, 'control.sock');
    const st = statSync(control);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(existsSync(sb.dbFile));
    assert.ok(
      d.logs.every((l) => typeof l.time === 'string' && typeof l.level === 'string' && typeof l.msg === 'string'),
      'every stderr line is a JSON log line',
    );
    assert.match(d.stdout, /control socket .*control\.sock/);
    assert.equal(await d.stop('SIGTERM'), 0);
    assert.equal(existsSync(control), false, 'the control socket is removed');
    assert.ok(d.logs.some((l) => l.msg === 'daemon stopped'));
  });

  it('exits 0 on SIGINT too', async () => {
    const d = await daemon(box());
    assert.equal(await d.stop('SIGINT'), 0);
  });

  it('a signal during start-up stops the daemon cleanly once it is up, never kills it', async () => {
    // 'daemon starting' comes before the store, the parents and auto-start:
    // the signal lands while the daemon is still coming up.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const sb = box();
      const child = spawn(process.execPath, [MAIN, 'daemon'], { env: sb.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no 'daemon starting' line: ${stderr}`)), 15_000);
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
          if (stderr.includes('"daemon starting"')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill(signal);
      const [code, killedBy] = await exited;
      assert.deepEqual([code, killedBy], [0, null], `${signal}: ${stderr}`);
      assert.match(stderr, /"daemon stopped"/);
      assert.equal(existsSync(join(sb.runtimeDir, 'control.sock')), false);
    }
  });

  it('refuses a second daemon on the same runtime directory and leaves the first serving', async () => {
    const sb = box();
    const first = await daemon(sb);
    const line = await fails(sb, ['daemon']);
    assert.match(line, /^uvfio: another uvfio daemon is already serving .*control\.sock/);
    const r = await uvfio(sb, ['list']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await first.stop(), 0);
  });

  it('replaces a control socket left behind by a daemon that was killed', async () => {
    const sb = box();
    const first = await daemon(sb);
    first.kill();
    await first.stop();
    assert.ok(existsSync(join(sb.runtimeDir, 'control.sock')), 'SIGKILL leaves the socket file');
    const second = await daemon(sb);
    assert.equal((await uvfio(sb, ['list'])).code, 0);
    assert.equal(await second.stop(), 0);
  });

  it('bad flags are one line and status 1', async () => {
    const sb = box();
    assert.match(await fails(sb, ['daemon', '--shutdown-timeout', 'soon']), /--shutdown-timeout: "soon" is not a number/);
    assert.match(await fails(sb, ['daemon', '--log-level', 'loud']), /--log-level: "loud" is not one of/);
    assert.match(await fails(sb, ['daemon', '--log-level', 'toString']), /--log-level: "toString" is not one of/);
    assert.match(await fails(sb, ['daemon', '--runtime-dir', `/tmp/${'x'.repeat(120)}`]), /too long for UNIX socket paths/);
  });
});
