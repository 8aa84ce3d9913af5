/**
 * The hostile-client harness itself: it passes a daemon that is fine, and
 * it fails one that freezes or keeps what a client left behind (a harness
 * that cannot fail proves nothing). And the daemon's `--limit` reaches the
 * server: advertised in VERSION, enforced, logged naming the device.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PciRegion } from '../../src/base/uapi.js';
import { Hostile, PROBE_DEADLINE_MS } from './harness.js';

const started: Hostile[] = [];
after(() => {
  for (const h of started) h.kill();
});

async function start(...args: Parameters<typeof Hostile.start>): Promise<Hostile> {
  const h = await Hostile.start(...args);
  started.push(h);
  return h;
}

describe('hostile harness', () => {
  it('passes a well-behaved client: probes answer, the daemon gets back to its baseline', async () => {
    const h = await start();
    const { probes } = await h.underAttack(async () => {
      for (let i = 0; i < 4; i++) {
        const c = await h.connectAttacker();
        await c.regionRead(PciRegion.CONFIG, 0, 64);
        await c.dmaMapMemory(0x100000, 1 << 20);
        await sleep(150);
        c.close();
      }
    });
    assert.ok(probes >= 2, `${probes} probes ran`);
    await h.recovered();
    await h.stop();
  });

  it('fails when the daemon stops answering (SIGSTOP for longer than a probe may take)', async () => {
    const h = await start();
    await assert.rejects(
      h.underAttack(async () => {
        process.kill(h.pid, 'SIGSTOP');
        await sleep(PROBE_DEADLINE_MS + 700);
        process.kill(h.pid, 'SIGCONT');
        await sleep(300);
      }),
      /the bystander suffered during the attack/,
    );
    await h.stop();
  });

  it('fails when the daemon still holds what the attacker had', async () => {
    const h = await start();
    const c = await h.connectAttacker();
    await c.dmaMapMemory(0x100000, 1 << 20);
    await assert.rejects(h.recovered(1_000), /fds after the attack/);
    c.close();
    await h.recovered();
    await h.stop();
  });

  it('--limit reaches the server: advertised in VERSION, enforced, logged naming the device', async () => {
    const h = await start({ daemonArgs: ['--limit', 'dma-maps=2', '--limit', 'data-xfer-size=64K'] });
    const c = await h.connectAttacker();
    assert.equal(c.serverCapabilities.maxDmaMaps, 2);
    assert.equal(c.serverCapabilities.maxDataXferSize, 65536);
    await c.dmaMapMessages(0, new Uint8Array(4096));
    await c.dmaMapMemory(0x10000, 4096);
    await assert.rejects(c.dmaMapMessages(0x20000, new Uint8Array(4096)), (err: Error & { code?: string }) => err.code === 'ENOSPC');
    const line = await h.daemon.waitFor((l) => l.msg === 'vfio-user client refused: over a limit', 5_000);
    assert.equal(line.limit, 'dma-maps');
    assert.equal(line.device, h.attacker.uuid);
    assert.equal(line.pid, process.pid, 'the log names the client process');
    c.close();
    await h.recovered();
    await h.stop();
  });

  it('a malformed --limit is one error line and exit status 1', async () => {
    const { sandbox, fails } = await import('../cli/harness.js');
    const sb = sandbox();
    try {
      const line = await fails(sb, ['daemon', '--limit', 'dma-maps=lots']);
      assert.match(line, /^uvfio: --limit dma-maps: "lots" is not a whole number$/);
    } finally {
      sb.remove();
    }
  });
});
