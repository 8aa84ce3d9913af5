/**
 * `npm run bench` kept alive: every row of the benchmark runs once with
 * small counts, on raw_server, the Node floor and uvfio (BENCH_SMOKE=1: nothing is written to BENCHMARKS.md); and
 * bench/takeover.js, one takeover of its small setup. It
 * checks that each measurement comes out a number, not how fast: timings
 * are not tests on a shared machine.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const TAKEOVER = fileURLToPath(new URL('../../bench/takeover.js', import.meta.url));
const AB = fileURLToPath(new URL('../../bench/ab.js', import.meta.url));
const TREE = fileURLToPath(new URL('../../..', import.meta.url));
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const ROWS = [
  '4-byte REGION_READ, median (us)',
  '4-byte REGION_READ, p99 (us)',
  '4-byte REGION_READ, ops/s',
  '4-byte REGION_WRITE, median (us)',
  '4-byte REGION_WRITE, p99 (us)',
  '32 KiB REGION_WRITE, MiB/s',
  '1 MiB REGION_READ, MiB/s',
  '1 MiB REGION_WRITE, MiB/s',
  'posted 4-byte writes, ops/s',
  '4 clients on 4 devices, aggregate ops/s',
  'interrupt latency, mtty INTx, median (us)',
  'interrupt latency, mtty INTx, p99 (us)',
];

describe('bench smoke', () => {
  it('npm run bench measures every row', { skip: !(have('gcc') && have('taskset')) && 'gcc and taskset are needed' }, () => {
    assert.ok(existsSync(RUN));
    const r = spawnSync(process.execPath, [RUN], { env: { ...process.env, BENCH_SMOKE: '1' }, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const name of ROWS) {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`| ${name} |`));
      assert.ok(line !== undefined, `the table has ${name}:\n${r.stdout}`);
      const [, , raw, floor, uv, floorRatio, ratio] = line.split('|').map((c) => c.trim().replace(/,/g, ''));
      // The Node floor has no device, so no interrupt to measure.
      const measured = name.startsWith('interrupt') ? [raw, uv, ratio] : [raw, floor, uv, floorRatio, ratio];
      for (const v of measured) assert.ok(Number.isFinite(Number(v)) && Number(v) > 0, `${name}: ${line}`);
    }
    assert.match(r.stdout, /100 devices \+ 100 idle clients \(MiB\) \| \| \| \d+\.\d/);
  });

  it(
    'bench/ab.js races two trees (this one twice here) against raw_server on every workload',
    { skip: !(have('gcc') && have('taskset')) && 'gcc and taskset are needed' },
    () => {
      const r = spawnSync(process.execPath, [AB, TREE], { env: { ...process.env, BENCH_SMOKE: '1' }, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      for (const name of ['read4', 'write4', 'write32k', 'posted']) {
        const m = new RegExp(
          `^${name}: median ratio to raw_server \\(above 1: slower\\) other (\\S+), this (\\S+); this better in [01] of 1 rounds$`,
          'm',
        ).exec(r.stdout);
        assert.ok(m, `${name}:\n${r.stdout}`);
        for (const v of [m[1], m[2]]) assert.ok(Number.isFinite(Number(v)) && Number(v) > 0, `${name}: ${m[0]}`);
      }
    },
  );

  it('bench/takeover.js measures a pause for the 3-device setup', () => {
    const r = spawnSync(process.execPath, [TAKEOVER, '1'], { env: { ...process.env, BENCH_SMOKE: '1' }, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const m = /setup=3-devices devices=3 clients=3 rounds=1 pause_ms_median=(\d+\.\d) .*freeze_to_commit_ms_median=(\d+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) > 0 && Number(m[2]) > 0, r.stdout);
  });
});
