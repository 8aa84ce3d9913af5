/**
 * Attacks on the transport through the real daemon (issue 10): floods of
 * connections that never speak, a client that holds `uvfio stop` by never
 * completing VERSION, pipelined large reads whose replies are never read,
 * and many idle clients that once read a lot. The bystander is probed all
 * along (see harness.ts); each attack is bounded in time and count.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PciRegion } from '../../src/base/uapi.js';
import { Command, encodeMessage, encodeRegionRead, UnixSocket, type VfioUserClient } from '../../src/vfio-user/index.js';
import { uvfio } from '../cli/harness.js';
import { until } from '../support/until.js';
import { versionText } from '../vfio-user/server-harness.js';
import { hostileStarter, usageOf, within } from './harness.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const start = hostileStarter();

/** A raw connection that says nothing (or only what it is told to) and reads nothing back. */
function silent(path: string): UnixSocket {
  const s = UnixSocket.connect(path);
  s.onData = () => {};
  return s;
}

/** QEMU's VERSION proposal, enough for a raw client to be served. */
const VERSION = encodeMessage(1, Command.VERSION, 0, versionText(0, 0, '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576}}'));

describe('hostile: connections', () => {
  it('300 connections that never send VERSION: all but device-clients closed at once, the rest dropped at version-timeout', async () => {
    const h = await start({ daemonArgs: ['--limit', 'version-timeout=1000'] });
    let peak = 0;
    await h.underAttack(async () => {
      // In bursts of 50: the listen backlog (128) would refuse more at once.
      const socks: UnixSocket[] = [];
      for (let i = 0; i < 6; i++) {
        for (let j = 0; j < 50; j++) socks.push(silent(h.attacker.socket));
        await sleep(50);
      }
      for (let i = 0; i < 12; i++) {
        await sleep(100);
        peak = Math.max(peak, usageOf(h.pid).fds - h.baseline.fds);
      }
      await until(() => socks.every((s) => s.closed), 'every silent connection to be dropped', 3_000);
      for (const s of socks) s.destroy();
    });
    // 8 sessions at most (device-clients), each a socket and nothing more.
    assert.ok(peak <= 12, `the daemon held ${peak} more fds during the flood`);
    await h.recovered();
    await h.stop();
  });

  it('uvfio stop is not held up by a client that never completed VERSION', async () => {
    const h = await start();
    await h.underAttack(async () => {
      const idle = silent(h.attacker.socket);
      try {
        await sleep(100);
        const t = Date.now();
        const r = await uvfio(h.sb, ['stop', '-u', h.attacker.uuid]);
        assert.equal(r.code, 0, r.stderr);
        // Well under version-timeout (5 s): the client was dropped, not waited out.
        assert.ok(Date.now() - t < 3_000, `stop took ${Date.now() - t} ms`);
        await until(() => idle.closed, 'the idle client to be dropped', 2_000);
      } finally {
        idle.destroy();
      }
    });
    await h.recovered();
    await h.stop();
  });

  it('pipelined 1 MiB REGION_READs whose replies are never read: the daemon holds reply-queue, not 300 MiB', async () => {
    const h = await start({ attacker: 'mbochs/mbochs-medium' });
    let peak = 0;
    await h.underAttack(async () => {
      const s = silent(h.attacker.socket);
      s.write(VERSION);
      await sleep(200);
      s.pause(); // and never read again
      for (let i = 0; i < 300; i++) s.write(encodeRegionRead(2 + i, 0, PciRegion.BAR0, MiB));
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        peak = Math.max(peak, usageOf(h.pid).rss - h.baseline.rss);
      }
      s.destroy();
    });
    assert.ok(peak < 32 * MiB, `the daemon's RSS grew by ${(peak / MiB).toFixed(1)} MiB`);
    await h.recovered();
    await h.stop();
  });

  it('pipelined 64 KiB and 4-byte REGION_READs answered in the native layer, replies never read: the daemon holds reply-queue', async () => {
    const h = await start({ attacker: 'mbochs/mbochs-medium' });
    let peak = 0;
    await h.underAttack(async () => {
      const s = silent(h.attacker.socket);
      try {
        // Sequential reads first (answered natively, as the flood's first
        // ones are: BAR0 is plain memory), then the flood, the moment a
        // reply comes in, until the socket's buffer is full and the rest
        // goes to the session's reply queue.
        const WARM_UP = 400;
        let sent = 0;
        const flooded = new Promise<void>((resolve) => {
          s.onData = () => {
            if (sent === 0) return; // VERSION's reply
            if (sent < WARM_UP) {
              s.write(encodeRegionRead(2 + sent++, 0, PciRegion.BAR0, 4));
              return;
            }
            if (sent++ > WARM_UP) return;
            s.pause(); // and never read again
            // 3 in every 23 reads of 64 KiB, 4-byte reads between: 3000 and 20000.
            for (let i = 0; i < 23_000; i++) {
              const big = i % 23 < 3;
              s.write(encodeRegionRead(2 + WARM_UP + i, big ? (i % 64) * 64 * KiB : (i % 4096) * 4, PciRegion.BAR0, big ? 64 * KiB : 4));
            }
            resolve();
          };
        });
        s.write(VERSION);
        await sleep(200);
        s.write(encodeRegionRead(2 + sent++, 0, PciRegion.BAR0, 4));
        await within(flooded, 5_000, 'VERSION and the warm-up reads');
        for (let i = 0; i < 15; i++) {
          await sleep(100);
          peak = Math.max(peak, usageOf(h.pid).rss - h.baseline.rss);
        }
      } finally {
        s.destroy();
      }
    });
    assert.ok(peak < 32 * MiB, `the daemon's RSS grew by ${(peak / MiB).toFixed(1)} MiB`);
    await h.recovered();
    await h.stop();
  });

  it('100 idle clients that each read 1 MiB once keep no large buffer', async () => {
    const h = await start({ attacker: 'mbochs/mbochs-medium', daemonArgs: ['--limit', 'device-clients=100'] });
    let grown = 0;
    const clients: VfioUserClient[] = [];
    await h.underAttack(async () => {
      try {
        for (let i = 0; i < 100; i++) {
          const c = await h.connectAttacker();
          clients.push(c);
          await c.regionRead(PciRegion.BAR0, 0, MiB);
        }
        await sleep(300);
        grown = usageOf(h.pid).rss - h.baseline.rss;
      } finally {
        for (const c of clients) c.close();
      }
    });
    // Before: each kept a 1 MiB reply buffer and a receive buffer (over 100 MiB).
    assert.ok(grown < 24 * MiB, `100 idle clients grew the daemon's RSS by ${(grown / MiB).toFixed(1)} MiB`);
    await h.recovered();
    await h.stop();
  });
});
