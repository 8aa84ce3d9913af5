/**
 * The daemon's log lines: JSON for machines, `key=value` lines for people
 * on a terminal (a real pseudo-terminal, through script(1)), and the
 * syslog priority prefix when stderr is the journal (JOURNAL_STREAM naming
 * stderr's device and inode, as systemd sets it).
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioError } from '../../src/base/errors.js';
import { Logger } from '../../src/daemon/log.js';
import { Daemon, fails, MAIN, sandbox, type Sandbox } from '../cli/harness.js';

const sandboxes: Sandbox[] = [];
after(() => {
  for (const s of sandboxes) s.remove();
});
function sb(): Sandbox {
  const s = sandbox();
  sandboxes.push(s);
  return s;
}

function capture(style: ConstructorParameters<typeof Logger>[3]): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger((l) => void lines.push(l), 'debug', { unit: 'u1' }, style), lines };
}

describe('Logger', () => {
  it('json: one object per line, errors as their code and sentence', () => {
    const { log, lines } = capture({ format: 'json' });
    log.warn('device held', { uuid: 'abc', error: new VfioError('EBUSY', 'in use') });
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(lines[0]!.endsWith('}\n'), true);
    assert.deepEqual([o.level, o.msg, o.unit, o.uuid, o.error], ['warn', 'device held', 'u1', 'abc', 'EBUSY: in use']);
    assert.match(o.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('human: time, level, message, then key=value, quoted only when needed; one line whatever the message', () => {
    const { log, lines } = capture({ format: 'human' });
    log.info('device\nstarted', {
      path: '/run/uvfio/x.sock',
      n: 3,
      who: 'pid 7 (qemu -m 1G)',
      list: ['a', 'b'],
      gone: undefined,
      error: new VfioError('ENODEV', 'no'),
    });
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} info  device started unit=u1 path=\/run\/uvfio\/x\.sock n=3 who="pid 7 \(qemu -m 1G\)" list=\["a","b"\] error="ENODEV: no"\n$/,
    );
  });

  it('journal: each line starts with its syslog priority; human lines leave the time to the journal', () => {
    const { log, lines } = capture({ format: 'human', journal: true });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    assert.deepEqual(lines, ['<7>debug d unit=u1\n', '<6>info  i unit=u1\n', '<4>warn  w unit=u1\n', '<3>error e unit=u1\n']);
    const json = capture({ format: 'json', journal: true });
    json.log.warn('w');
    assert.match(json.lines[0]!, /^<4>\{"time":/);
  });
});

describe('uvfio daemon logs', () => {
  it(
    'on a terminal: human lines (auto); --log-format json overrides',
    { skip: spawnSync('script', ['--version']).status !== 0 && 'no script(1)' },
    async () => {
      const s = sb();
      const child = spawn('script', ['-qfec', `'${process.execPath}' '${MAIN}' daemon --no-defaults`, '/dev/null'], {
        env: s.env,
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        const deadline = Date.now() + 15_000;
        while (!out.includes('daemon ready') && Date.now() < deadline) await sleep(50);
        const starting = /^\S+ \S+ info  daemon starting pid=(\d+) /m.exec(out);
        assert.ok(starting, out);
        assert.match(out, /^\S+ \S+ info  daemon ready control=\S+control\.sock devices=0\r?$/m);
        process.kill(Number(starting[1]), 'SIGTERM');
        assert.equal(await exited, 0);
        assert.match(out, /info  daemon stopped\r?\n/);
      } finally {
        child.kill('SIGKILL');
      }
      assert.match(await fails(s, ['daemon', '--log-format', 'xml']), /^uvfio: --log-format: "xml" is not one of auto, human, json$/);
    },
  );

  it('to the journal: JOURNAL_STREAM names stderr, so every JSON line carries its priority', async () => {
    const s = sb();
    const file = join(s.dir, 'journal');
    const fd = openSync(file, 'w');
    const st = fstatSync(fd);
    const child = spawn(process.execPath, [MAIN, 'daemon', '--no-defaults'], {
      env: { ...s.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
      stdio: ['ignore', 'ignore', fd],
    });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 15_000;
      while (!readFileSync(file, 'utf8').includes('daemon ready') && Date.now() < deadline) await sleep(50);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.ok(lines.length >= 3, lines.join('\n'));
    for (const l of lines) assert.match(l, /^<6>\{"time":"[^"]+","level":"info",/);
  });

  it('elsewhere (a pipe, no journal): plain JSON lines', async () => {
    const s = sb();
    const d = await Daemon.start(s, ['--no-defaults']);
    try {
      assert.equal(await d.stop(), 0);
    } finally {
      d.kill();
    }
    assert.ok(d.logs.length >= 3 && d.logs.every((l) => l.level === 'info'), JSON.stringify(d.logs));
  });
});
