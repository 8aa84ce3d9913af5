/**
 * `uvfio trace` and `uvfio replay` as a user runs them: a real daemon, a
 * real vfio-user client driving an mtty card over its socket, the trace
 * verb streaming over the control socket into a file (--json) and to
 * stdout (human lines), and replay running the file again against a fresh
 * card, unmodified and with one reply changed.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import type { TraceHeader, TraceInterrupt, TraceLine, TraceMessage, TraceSession } from '../../src/daemon/trace-record.js';
import { VfioUserClient } from '../../src/vfio-user/client.js';
import { Daemon, MAIN, okJson, sandbox, uvfio, type Sandbox } from '../cli/harness.js';
import { until } from '../support/until.js';

const U = '7ace0000-1b4b-45ef-ad62-de05be9171df';
const sandboxes: Sandbox[] = [];
const daemons: Daemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  for (const s of sandboxes) s.remove();
});

/** A daemon of its own, left behind by no test. */
async function daemonUp(): Promise<{ sb: Sandbox; daemon: Daemon }> {
  const sb = sandbox();
  sandboxes.push(sb);
  const daemon = await Daemon.start(sb, ['--no-defaults']);
  daemons.push(daemon);
  return { sb, daemon };
}

/** A driver's first accesses: divisor, 8N1, interrupts, the scratch register, then a look at IIR and config space. */
async function drive(client: VfioUserClient): Promise<void> {
  const w = (offset: number, value: number) => client.regionWrite(0, offset, Uint8Array.of(value));
  await client.setIrqEventfds(PciIrq.INTX, 0, 1);
  await w(3, 0x80);
  await w(0, 0x0c);
  await w(1, 0x00);
  await w(3, 0x03);
  await w(1, 0x0f);
  await w(7, 0xa5);
  await client.regionRead(0, 7, 1);
  await client.regionRead(0, 2, 1);
  await client.regionRead(PciRegion.CONFIG, 0x04, 2);
  await client.regionRead(PciRegion.CONFIG, 0x10, 4);
  await assert.rejects(client.regionRead(0, 8, 1));
}

describe('uvfio trace and replay', () => {
  it('traces every message with register names, as JSON lines and human lines; replay finds no difference, then the one injected', async () => {
    const { sb, daemon } = await daemonUp();
    const { socket } = await okJson<{ socket: string }>(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-1']);
    const file = join(sb.dir, 'probe.trace');
    const jsonTrace = uvfio(sb, ['trace', '-u', U, '--json', '-o', file], 30_000);
    const humanTrace = uvfio(sb, ['trace', '-u', U], 30_000);
    await until(() => daemon.logs.filter((l) => l.msg === 'trace started').length === 2, 'both traces to start', 10_000);

    const client = await VfioUserClient.connect(socket);
    await drive(client);
    client.close();
    await until(() => readFileSync(file, 'utf8').includes('"event":"closed"'), 'the session to close in the trace', 5_000);
    await okJson(sb, ['stop', '-u', U]);
    const [json, human] = await Promise.all([jsonTrace, humanTrace]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(human.code, 0, human.stderr);
    assert.match(json.stderr, /trace 7ace0000-\S+: \d+ events; the device stopped/);

    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TraceLine);
    const header = lines[0] as TraceHeader;
    assert.deepEqual([header.type, header.uuid, header.parent, header.mdevType], ['trace', U, 'mtty', 'mtty-1']);
    const messages = lines.filter((l): l is TraceMessage => l.type === 'message');
    assert.deepEqual(
      messages.filter((m) => m.cmd === 'REGION_WRITE').map((m) => `${m.register} ${String(m.fields.data)}`),
      ['port0 LCR 80', 'port0 DLL 0c', 'port0 DLM 00', 'port0 LCR 03', 'port0 IER 0f', 'port0 SCR a5'],
    );
    const reads = messages.filter((m) => m.cmd === 'REGION_READ');
    assert.deepEqual(
      reads.map((m) => m.register),
      ['port0 SCR', 'port0 IIR', 'COMMAND', 'BAR0', undefined],
    );
    assert.equal(reads[0]!.fields.data, 'a5', 'a read carries the data its reply gave');
    assert.deepEqual([reads[4]!.errno, reads[4]!.error], [22, 'EINVAL']);
    assert.equal(messages[0]!.cmd, 'VERSION');
    assert.ok(messages.every((m) => m.latencyUs >= 0 && m.request.base64 !== undefined && m.from === 'client'));
    const set = messages.find((m) => m.cmd === 'DEVICE_SET_IRQS')!;
    assert.deepEqual([set.fields.irq, set.fds], ['INTX', 1]);
    const sessions = lines.filter((l): l is TraceSession => l.type === 'session').map((s) => s.event);
    assert.deepEqual(sessions, ['opened', 'bound', 'closed']);
    const boundAt = lines.findIndex((l) => l.type === 'session' && l.event === 'bound');
    assert.equal(lines[boundAt - 1], messages[0], 'bound comes right after the VERSION that bound it');
    const irqs = lines.filter((l): l is TraceInterrupt => l.type === 'interrupt');
    assert.ok(irqs.length > 0 && irqs.every((i) => i.irq === 'INTX' && i.from === 'server'), 'IER THRI raised INTx, and the trace shows it');

    assert.match(human.stdout, /c\d+ > REGION_WRITE BAR0\+0x3\/1 port0 LCR = 0x80 {2}ok [\d.]+us/);
    assert.match(human.stdout, /c\d+ > REGION_READ config\+0x4\/2 COMMAND -> 0x0000 {2}ok/);
    assert.match(human.stdout, /c\d+ < interrupt INTX\[0\]/);
    assert.match(human.stdout, /REGION_READ BAR0\+0x8\/1 {2}EINVAL/);

    // Replayed as recorded: every reply the same.
    const clean = await uvfio(sb, ['replay', file], 30_000);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, new RegExp(`^${messages.length} replies, no difference`, 'm'));

    // Against a two-port card: the same answers on port 0, and it says what it ran against.
    const other = await uvfio(sb, ['replay', file, '--type', 'mtty-2', '--json'], 30_000);
    assert.equal(other.code, 0, other.stdout + other.stderr);
    const outcome = JSON.parse(other.stdout) as { device: string; replies: number; difference?: unknown; notes: string[] };
    assert.deepEqual([outcome.device, outcome.replies, outcome.difference], ['mtty/mtty-2', messages.length, undefined]);
    assert.ok(outcome.notes.includes('replayed against mtty/mtty-2, recorded on mtty/mtty-1'));

    // One reply changed: the scratch register read back 5a, not a5.
    const scr = messages.indexOf(reads[0]!);
    const forged = lines.map((l) => {
      if (l !== reads[0]) return JSON.stringify(l);
      const body = Buffer.from(reads[0].reply!.base64!, 'base64');
      body[16] = 0x5a;
      return JSON.stringify({ ...l, reply: { size: body.length, base64: body.toString('base64') } });
    });
    const forgedFile = join(sb.dir, 'forged.trace');
    writeFileSync(forgedFile, `${forged.join('\n')}\n`);
    const differs = await uvfio(sb, ['replay', forgedFile], 30_000);
    assert.equal(differs.code, 1);
    assert.match(differs.stdout, new RegExp(`^message ${scr + 1} \\(line \\d+\\), client \\d+: REGION_READ port0 SCR$`, 'm'));
    assert.match(differs.stdout, /expected: data 5a\n\s+got: +data a5/);
    assert.match(differs.stdout, new RegExp(`^${scr} replies matched before it`, 'm'));
    assert.match(differs.stderr, /^uvfio: replay .*forged\.trace: message \d+ \(REGION_READ\) differs$/m);

    // The daemon let go of the channels: nobody traces any more.
    assert.ok(daemon.logs.some((l) => l.msg === 'trace ended' && l.reason === 'the device stopped'));
  });

  it('trace into a pipe its reader closed ends quietly, saying so', async () => {
    const { sb, daemon } = await daemonUp();
    const { socket } = await okJson<{ socket: string }>(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-1']);
    const child = spawn(process.execPath, [MAIN, 'trace', '-u', U], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await until(() => daemon.logs.some((l) => l.msg === 'trace started'), 'the trace to start', 10_000);
    child.stdout.destroy(); // `uvfio trace | head -0`
    const client = await VfioUserClient.connect(socket);
    for (let i = 0; i < 20 && child.exitCode === null; i++) await client.regionRead(0, 5, 1);
    client.close();
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /^uvfio: trace 7ace0000-\S+: \d+ events; the output was closed$/m);
    await until(() => daemon.logs.some((l) => l.msg === 'trace ended'), 'the daemon to end the trace', 10_000);
  });

  it('trace of a device that is not running fails in one line; replay of a file that is not a JSON trace says how to record one', async () => {
    const { sb } = await daemonUp();
    const r = await uvfio(sb, ['trace', '-u', U]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^uvfio: 7ace0000-\S+ is not running\n$/);
    const human = join(sb.dir, 'human.trace');
    writeFileSync(human, '   0.000100 c1 > REGION_READ config+0x4/2 COMMAND -> 0x0000  ok 2us\n');
    const bad = await uvfio(sb, ['replay', human]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a JSON line \(record the trace with "uvfio trace --json"\)/);
  });
});
