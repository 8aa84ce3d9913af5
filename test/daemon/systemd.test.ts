/**
 * uvfio under systemd. Readiness (Type=notify): the daemon sends READY=1
 * once its control socket answers and its devices are served, STATUS=
 * lines as devices come and go, STOPPING=1 when it shuts down; the service
 * manager here is a real AF_UNIX datagram socket bound by python3 (as
 * systemd binds NOTIFY_SOCKET), on a path and in the abstract namespace.
 * The unit and sysusers files in contrib/systemd: systemd's own tools
 * check them, and the unit's command line and environment start a daemon
 * that becomes ready.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { notifyDatagram } from '../../src/native/notify.js';
import { until } from '../support/until.js';
import { Daemon, MAIN, ok, okJson, sandbox, type Sandbox } from '../cli/harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const UNIT = join(ROOT, 'contrib', 'systemd', 'uvfio.service');
const SYSUSERS = join(ROOT, 'contrib', 'systemd', 'uvfio.sysusers.conf');
const have = (program: string) => spawnSync(program, ['--version'], { stdio: 'ignore' }).status === 0;

const python = spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0;

/** Binds a datagram socket at `address` and prints each datagram received as a JSON string line. */
const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print(json.dumps('listening'), flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

class Manager {
  readonly messages: string[] = [];
  private constructor(private readonly child: ChildProcess) {
    let tail = '';
    child.stdout!.on('data', (d: Buffer) => {
      tail += d.toString();
      let nl: number;
      while ((nl = tail.indexOf('\n')) !== -1) {
        this.messages.push(JSON.parse(tail.slice(0, nl)) as string);
        tail = tail.slice(nl + 1);
      }
    });
  }

  static async listen(address: string): Promise<Manager> {
    const m = new Manager(spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await m.next((s) => s === 'listening');
    return m;
  }

  /** The first message that matches, waited for at most `ms`. */
  async next(match: (s: string) => boolean, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no such notification within ${ms} ms; got ${JSON.stringify(this.messages)}`);
      await sleep(20);
    }
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

function setup(): Sandbox {
  const sb = sandbox();
  cleanups.push(() => sb.remove());
  return sb;
}

describe('systemd notification', { skip: !python && 'python3 is not installed' }, () => {
  it('READY=1 once the daemon answers; STATUS as devices come and go; STOPPING=1 at shutdown', async () => {
    const sb = setup();
    const address = join(sb.dir, 'notify');
    const manager = await Manager.listen(address);
    cleanups.push(() => manager.close());
    sb.env.NOTIFY_SOCKET = address;
    const daemon = await Daemon.start(sb, ['--no-defaults']);
    cleanups.push(() => daemon.kill());
    const ready = await manager.next((s) => s.startsWith('READY=1'));
    assert.equal(ready, `READY=1\nSTATUS=0 devices served; control socket ${join(sb.runtimeDir, 'control.sock')}\nMAINPID=${daemon.child.pid}\n`);
    // Ready means ready: nothing sent it before the control socket answered.
    assert.equal(manager.messages.indexOf(ready), 1);
    await ok(sb, ['list']);
    const { uuid } = await okJson<{ uuid: string }>(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
    assert.match(await manager.next((s) => s.startsWith('STATUS=1 device served')), /^STATUS=1 device served; control socket \S+\n$/);
    await ok(sb, ['stop', '-u', uuid]);
    await manager.next((s) => s.startsWith('STATUS=0 devices') && manager.messages.indexOf(s) > manager.messages.indexOf(ready));
    assert.equal(await daemon.stop('SIGTERM'), 0);
    assert.equal(await manager.next((s) => s.startsWith('STOPPING=1')), 'STOPPING=1\nSTATUS=stopping (SIGTERM): removing 0 devices\n');
  });

  it("the unit's ExecReload (a takeover, --detach) returns once the new daemon serves; the old one names it MAINPID first", async () => {
    const sb = setup();
    const address = join(sb.dir, 'notify');
    const manager = await Manager.listen(address);
    cleanups.push(() => manager.close());
    sb.env.NOTIFY_SOCKET = address;
    const old = await Daemon.start(sb, ['--no-defaults']);
    cleanups.push(() => old.kill());
    await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
    const [reload] = unitValues('ExecReload');
    const args = reload!.split(' ');
    assert.equal(args[0], 'uvfio');
    const r = spawnSync(process.execPath, [MAIN, ...args.slice(1), '--no-defaults'], { env: sb.env, stdio: 'ignore', timeout: 20_000 });
    assert.equal(r.status, 0, 'the reload command returns 0, leaving the new daemon running');
    const handed = await manager.next((s) => s.startsWith('MAINPID='));
    const pid = Number(/^MAINPID=(\d+)\n/.exec(handed)![1]);
    cleanups.push(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    });
    assert.notEqual(pid, old.child.pid);
    const ready = await manager.next((s) => s.startsWith('READY=1') && s.includes(`MAINPID=${pid}`));
    assert.ok(
      manager.messages.indexOf(handed) < manager.messages.indexOf(ready),
      'systemd hears of the new main PID from the old one (NotifyAccess=main) before the new one speaks',
    );
    await until(() => old.child.exitCode !== null, 'the old daemon to exit', 10_000);
    assert.equal(old.child.exitCode, 0, 'the old daemon exited 0 by itself');
    assert.equal((await okJson<unknown[]>(sb, ['list'])).length, 1, 'the new daemon serves the device');
    process.kill(pid, 'SIGTERM');
  });

  it('an abstract NOTIFY_SOCKET (@name) works too; a socket nobody listens on is ECONNREFUSED', async () => {
    const name = `@uvfio-test-${process.pid}-${Date.now()}`;
    const manager = await Manager.listen(name);
    cleanups.push(() => manager.close());
    notifyDatagram(name, Buffer.from('READY=1\n'));
    assert.equal(await manager.next((s) => s.startsWith('READY')), 'READY=1\n');
    assert.throws(() => notifyDatagram(`${name}-nobody`, Buffer.from('READY=1\n')), { code: 'ECONNREFUSED' });
    assert.throws(() => notifyDatagram('relative/path', Buffer.from('x')), { code: 'EINVAL' });
  });
});

/** The values of `key=` lines of the unit, in order. */
function unitValues(key: string): string[] {
  return readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('contrib/systemd', () => {
  it(
    'systemd-analyze verify finds nothing wrong with the unit (uvfio and its man page where they would be installed)',
    { skip: !have('systemd-analyze') && 'no systemd-analyze' },
    () => {
      const sb = setup();
      // verify wants ExecStart's program and the Documentation= man page to exist.
      const bin = join(sb.dir, 'uvfio');
      writeFileSync(bin, `#!/bin/sh\nexec '${process.execPath}' '${MAIN}' "$@"\n`, { mode: 0o755 });
      const unit = join(sb.dir, 'uvfio.service');
      writeFileSync(
        unit,
        readFileSync(UNIT, 'utf8')
          .replace(/^ExecStart=uvfio /m, `ExecStart=${bin} `)
          .replace(/^ExecReload=uvfio /m, `ExecReload=${bin} `),
      );
      const r = spawnSync('systemd-analyze', ['verify', unit], {
        encoding: 'utf8',
        env: { ...process.env, MANPATH: `${join(ROOT, 'man')}:` },
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
    },
  );

  it('systemd-sysusers makes the uvfio user, a member of the socket group', { skip: !have('systemd-sysusers') && 'no systemd-sysusers' }, () => {
    const sb = setup();
    const root = join(sb.dir, 'root');
    mkdirSync(join(root, 'etc', 'sysusers.d'), { recursive: true });
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nkvm:x:107:\n');
    writeFileSync(join(root, 'etc', 'sysusers.d', 'uvfio.conf'), readFileSync(SYSUSERS));
    const r = spawnSync('systemd-sysusers', [`--root=${root}`], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(join(root, 'etc', 'passwd'), 'utf8'), /^uvfio:x:(\d+):\1:[^:]*:\/var\/lib\/uvfio:/m);
    assert.match(readFileSync(join(root, 'etc', 'group'), 'utf8'), /^kvm:x:107:uvfio$/m);
    const [socketGroup] = unitValues('SupplementaryGroups');
    assert.equal(socketGroup, 'kvm', 'the unit shares its sockets with the group sysusers puts uvfio in');
  });

  it(
    "the unit's command line and environment start a daemon that becomes ready, logging human lines with priorities",
    { skip: !python && 'python3 is not installed' },
    async () => {
      const sb = setup();
      const [exec] = unitValues('ExecStart');
      const args = exec!.split(' ');
      assert.equal(args[0], 'uvfio');
      const env: NodeJS.ProcessEnv = {};
      for (const assignments of unitValues('Environment')) {
        for (const a of assignments.split(' ')) env[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
      }
      assert.deepEqual(Object.keys(env).sort(), ['UVFIO_RUNTIME_DIR', 'UVFIO_SOCKET_GROUP', 'UVFIO_STATE_DIR']);
      const address = join(sb.dir, 'notify');
      const manager = await Manager.listen(address);
      cleanups.push(() => manager.close());
      // Here: the sandbox's directories, and a group that exists wherever the tests run.
      const daemon = spawn(process.execPath, [MAIN, ...args.slice(1), '--no-defaults'], {
        env: {
          ...sb.env,
          ...env,
          UVFIO_RUNTIME_DIR: sb.runtimeDir,
          UVFIO_STATE_DIR: sb.stateDir,
          UVFIO_SOCKET_GROUP: String(process.getgid!()),
          NOTIFY_SOCKET: address,
          JOURNAL_STREAM: '',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      daemon.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      cleanups.push(() => daemon.kill('SIGKILL'));
      await manager.next((s) => s.startsWith('READY=1'));
      assert.match(stderr, /^\S+ \S+ info  daemon starting pid=\d+ /m);
      daemon.kill('SIGTERM');
      await manager.next((s) => s.startsWith('STOPPING=1'));
    },
  );
});
