/**
 * `uvfio daemon --takeover` between real processes (the real command
 * line, real sockets): a client pipelining requests through the takeover
 * gets every reply, in order, from one daemon then the other without
 * reconnecting; its INTx eventfd, DMA mapping and REQ work with the new
 * daemon; `uvfio list` shows the same devices. A takeover that fails
 * half-way (injected failure, a new daemon killed before the commit, one
 * that never commits) leaves the old daemon serving; a second takeover
 * while one is under way is refused with EBUSY.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { UART_IER, UART_MCR, UART_REG } from '../../src/drivers/mtty/uart.js';
import { encodeRegionRead, encodeRegionWrite, VfioUserClient } from '../../src/vfio-user/index.js';
import { until } from '../support/until.js';
import { RawPeer } from '../vfio-user/server-harness.js';
import { Daemon, MAIN, ok, okJson, sandbox, uvfio, type Sandbox } from './harness.js';

interface Dev {
  uuid: string;
  parent: string;
  mdev_type: string;
  socket?: string;
  vnc?: string;
  clients?: unknown[];
}

const daemons: Daemon[] = [];
const boxes: Sandbox[] = [];
after(() => {
  for (const d of daemons) d.kill();
  for (const b of boxes) b.remove();
});

/** A sandbox whose daemons wait `timeoutMs` at most for each other in a takeover. */
function box(timeoutMs = 3000): Sandbox {
  const sb = sandbox();
  sb.env.UVFIO_TAKEOVER_TIMEOUT_MS = String(timeoutMs);
  boxes.push(sb);
  return sb;
}

async function start(sb: Sandbox, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const d = await Daemon.start({ ...sb, env: { ...sb.env, ...env } }, ['--no-defaults', ...args]);
  daemons.push(d);
  return d;
}

async function exited(d: Daemon, ms = 10_000): Promise<number | null> {
  await until(() => d.child.exitCode !== null || d.child.signalCode !== null, 'the daemon to exit', ms);
  return d.child.exitCode;
}

async function list(sb: Sandbox): Promise<Dev[]> {
  return okJson<Dev[]>(sb, ['list']);
}

/** One byte of port 0 of an mtty card. */
const SCR = UART_REG.SCR;

describe('uvfio daemon --takeover', () => {
  it('a pipelining client gets every reply in order across the takeover; list shows the same devices', async () => {
    const sb = box();
    const old = await start(sb);
    for (const t of ['mtty-1', 'mtty-2', 'mbochs-small']) await ok(sb, ['start', '-p', t.split('-')[0]!, '-t', t]);
    const mtty = (await list(sb)).find((d) => d.mdev_type === 'mtty-1')!;
    const peer = new RawPeer(mtty.socket!);
    await peer.negotiate();
    const before = await list(sb);
    let id = 1;
    let sent = 0;
    const expected: number[] = [];
    /** A burst of writes of SCR, each followed by a read that must see it; without waiting for replies. */
    const burst = (n: number) => {
      for (let i = 0; i < n; i++) {
        const v = (id * 7) & 0xff;
        peer.write(encodeRegionWrite(id++, SCR, PciRegion.BAR0, Uint8Array.of(v)));
        peer.write(encodeRegionRead(id++, SCR, PciRegion.BAR0, 1));
        expected.push(v);
        sent += 2;
      }
    };
    const replies: Array<{ msgId: number; errorNo: number; value: number | undefined; at: number }> = [];
    const collect = () => {
      for (const f of peer.frames.splice(0))
        replies.push({ msgId: f.msgId, errorNo: f.errorNo, value: f.body.length > 16 ? f.body[16] : undefined, at: performance.now() });
    };
    const pump = setInterval(() => {
      collect();
      if (sent - replies.length < 200) burst(50);
    }, 1);
    try {
      await until(() => replies.length > 500, 'the old daemon answers', 10_000);
      const next = await start(sb, ['--takeover']);
      assert.equal(await exited(old), 0, 'the old daemon exits 0');
      const upTo = replies.length;
      await until(() => replies.length > upTo + 500, 'the new daemon answers', 10_000);
      clearInterval(pump);
      await until(() => (collect(), replies.length === sent), `every reply (${replies.length} of ${sent})`, 10_000);
      assert.deepEqual(
        replies.map((r) => r.msgId),
        Array.from({ length: sent }, (_, k) => k + 1),
        'in order, none lost, none twice',
      );
      assert.deepEqual(
        replies.filter((r) => r.errorNo !== 0).map((r) => r.msgId),
        [],
        'all succeeded',
      );
      const reads = replies.filter((_, k) => k % 2 === 1).map((r) => r.value);
      assert.deepEqual(reads, expected, 'each read sees the write before it');
      let gap = 0;
      for (let k = 1; k < replies.length; k++) gap = Math.max(gap, replies[k]!.at - replies[k - 1]!.at);
      assert.ok(gap < 2000, `the pause a client saw: ${gap.toFixed(1)} ms`);
      // VNC servers listen anew (on new ports); everything else is as it was, the client included.
      const noVnc = (ds: Dev[]) => ds.map(({ vnc: _vnc, ...d }) => d);
      assert.deepEqual(noVnc(await list(sb)), noVnc(before), 'the same devices, sockets, types and clients');
      assert.ok(next.logs.some((l) => l.msg === 'takeover: serving'));
    } finally {
      clearInterval(pump);
      peer.close();
    }
  });

  it('INTx, a DMA mapping and REQ work through the new daemon; a second takeover replaces it in turn', async () => {
    const sb = box();
    const old = await start(sb);
    const uuid = (await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1'])).trim();
    const socket = (await list(sb))[0]!.socket!;
    const client = await VfioUserClient.connect(socket);
    try {
      const irq = await client.setIrqEventfds(PciIrq.INTX, 0, 1);
      await client.dmaMapMemory(0x10_0000, 1 << 20);
      await client.regionWrite(PciRegion.BAR0, UART_REG.MCR, Uint8Array.of(UART_MCR.OUT2));
      await client.regionWrite(PciRegion.BAR0, UART_REG.IER, Uint8Array.of(UART_IER.RDI));
      await client.regionWrite(PciRegion.BAR0, UART_REG.TX, Uint8Array.of(0x41));
      assert.equal(await irq.line(0).next(), 1n, 'INTx from the old daemon');
      const first = await start(sb, ['--takeover']);
      assert.equal(await exited(old), 0);
      // The new daemon has the UART as it was: the byte, and the INTx waiting for its unmask.
      assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, UART_REG.RX, 1))], [0x41]);
      await client.regionWrite(PciRegion.BAR0, UART_REG.TX, Uint8Array.of(0x42));
      const again = irq.line(0).next();
      await client.setIrqs(PciIrq.INTX, 0, 1, 'unmask', 'none');
      assert.equal(await again, 1n, 'INTx through the eventfd the new daemon adopted');
      const second = await start(sb, ['--takeover']);
      assert.equal(await exited(first), 0, 'the first new daemon hands over in turn');
      assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, UART_REG.RX, 1))], [0x42]);
      await client.dmaUnmap(0x10_0000, 1 << 20); // the mapping is known here: unmapping an unknown one fails
      const req = await client.setIrqEventfds(PciIrq.REQ, 0, 1);
      const asked = req.line(0).next();
      const stopping = uvfio(sb, ['stop', '-u', uuid]);
      assert.equal(await asked, 1n, 'REQ from the daemon now serving');
      client.close();
      const r = await stopping;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await list(sb), []);
      void second;
    } finally {
      client.close();
    }
  });

  it('MSI through the eventfd the new daemon adopted, the UART as it was', async () => {
    const sb = box();
    const old = await start(sb);
    await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
    const client = await VfioUserClient.connect((await list(sb))[0]!.socket!);
    try {
      const msi = await client.setIrqEventfds(PciIrq.MSI, 0, 1);
      await client.regionWrite(PciRegion.BAR0, UART_REG.IER, Uint8Array.of(UART_IER.RDI));
      await client.regionWrite(PciRegion.BAR0, UART_REG.TX, Uint8Array.of(0x61));
      assert.equal(await msi.line(0).next(), 1n, 'MSI from the old daemon');
      assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, UART_REG.RX, 1))], [0x61]);
      await start(sb, ['--takeover']);
      assert.equal(await exited(old), 0);
      const next = msi.line(0).next();
      await client.regionWrite(PciRegion.BAR0, UART_REG.TX, Uint8Array.of(0x62));
      assert.equal(await next, 1n, 'MSI from the new daemon');
      assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, UART_REG.RX, 1))], [0x62]);
    } finally {
      client.close();
    }
  });

  for (const [inject, what] of [
    ['adopt', 'fails while adopting (injected)'],
    ['exit', 'is killed just before the commit'],
    ['hang', 'never commits (the old daemon times out)'],
  ] as const) {
    it(`a new daemon that ${what} leaves the old one serving`, async () => {
      const sb = box(1500);
      const old = await start(sb);
      await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
      const client = await VfioUserClient.connect((await list(sb))[0]!.socket!);
      const before = await list(sb);
      try {
        await client.regionWrite(PciRegion.BAR0, SCR, Uint8Array.of(0x11));
        const r = uvfio({ ...sb, env: { ...sb.env, UVFIO_TAKEOVER_FAIL: inject } }, ['daemon', '--no-defaults', '--takeover'], 20_000);
        // While the old daemon waits frozen for a commit that never comes, a new client connects: it waits in the backlog.
        let late: Promise<VfioUserClient> | undefined;
        if (inject === 'hang') {
          await old.waitFor((l) => l.msg === 'takeover: handing over', 10_000);
          await new Promise((resolve) => setTimeout(resolve, 300));
          late = VfioUserClient.connect(before[0]!.socket!, { timeoutMs: 10_000 });
        }
        const done = await r;
        if (inject === 'adopt') {
          assert.equal(done.code, 1);
          assert.match(done.stderr, /uvfio: takeover failed \(EIO\): a failure injected .*; the running daemon serves on/);
        } else if (inject === 'exit') {
          assert.equal(done.code, 9);
        } else {
          assert.equal(done.code, 1, done.stderr);
          assert.match(done.stderr, /uvfio: takeover failed \(ETIMEDOUT\): .*; the running daemon serves on/);
        }
        await old.waitFor((l) => l.msg === 'takeover called off: serving on', 5000);
        assert.equal(old.child.exitCode, null, 'the old daemon runs');
        assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, SCR, 1))], [0x11], 'and serves the same client');
        await client.regionWrite(PciRegion.BAR0, SCR, Uint8Array.of(0x22));
        assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, SCR, 1))], [0x22]);
        if (late) {
          const c = await late;
          assert.deepEqual([...(await c.regionRead(PciRegion.BAR0, SCR, 1))], [0x22], 'the client that connected meanwhile is served');
          c.close();
          for (let i = 0; i < 50 && (await list(sb))[0]!.clients!.length !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.deepEqual(await list(sb), before);
        // And can still be taken over.
        await start(sb, ['--takeover']);
        assert.equal(await exited(old), 0);
        assert.deepEqual([...(await client.regionRead(PciRegion.BAR0, SCR, 1))], [0x22]);
      } finally {
        client.close();
      }
    });
  }

  it('a second takeover while one is under way is refused with EBUSY; the first one going away leaves the old daemon serving', async () => {
    const sb = box(20_000);
    const old = await start(sb);
    await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
    const before = await list(sb);
    const hanging = spawn(process.execPath, [MAIN, 'daemon', '--no-defaults', '--takeover'], {
      env: { ...sb.env, UVFIO_TAKEOVER_FAIL: 'hang' },
      stdio: 'ignore',
    });
    try {
      await old.waitFor((l) => l.msg === 'takeover: handing over', 10_000);
      const second = await uvfio(sb, ['daemon', '--no-defaults', '--takeover']);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /^uvfio: takeover failed \(EBUSY\): another takeover of this daemon is under way; the running daemon serves on$/m);
      const busy = await uvfio(sb, ['list'], 1500).catch((err: Error) => err);
      assert.ok(busy instanceof Error, 'control requests wait while a takeover is under way');
    } finally {
      hanging.kill('SIGKILL');
    }
    await old.waitFor((l) => l.msg === 'takeover called off: serving on', 5000);
    assert.deepEqual(await list(sb), before, 'the old daemon serves on');
  });

  it('two takeovers started at once: each one either serves or is refused with EBUSY; one daemon serves the same devices after', async () => {
    const sb = box();
    const old = await start(sb);
    await ok(sb, ['start', '-p', 'mtty', '-t', 'mtty-1']);
    const before = await list(sb);
    const racers = [0, 1].map(() =>
      spawn(process.execPath, [MAIN, 'daemon', '--no-defaults', '--takeover'], { env: sb.env, stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    const outcomes = racers.map(
      (c) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          let stderr = '';
          c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          c.on('exit', (code) => resolve({ code, stderr }));
        }),
    );
    try {
      assert.equal(await exited(old, 15_000), 0, 'the old daemon handed over to one of them');
      // A loser exits 1 with EBUSY; a winner serves until stopped, or hands over to the
      // other in turn (that one reached the socket after the commit): then it exits 0.
      await until(() => racers.filter((c) => c.exitCode !== null).length === 1, 'one racer to be done', 20_000);
      const running = racers.filter((c) => c.exitCode === null);
      assert.equal(running.length, 1, 'exactly one daemon serves');
      for (const [i, c] of racers.entries()) {
        if (c.exitCode === null) continue;
        const o = await outcomes[i]!;
        if (o.code === 1) assert.match(o.stderr, /uvfio: takeover failed \(EBUSY\)/);
        else assert.equal(o.code, 0, `a racer that took over and then handed over exits 0 (${o.stderr})`);
      }
      assert.deepEqual(await list(sb), before);
    } finally {
      for (const c of racers) c.kill('SIGKILL');
    }
  });

  it('with no daemon running, --takeover fails with one line', async () => {
    const sb = box();
    const r = await uvfio(sb, ['daemon', '--no-defaults', '--takeover']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^uvfio: takeover failed \((ENOENT|ECONNREFUSED)\): no uvfio daemon to take over answers on .*takeover\.sock/m);
  });
});
