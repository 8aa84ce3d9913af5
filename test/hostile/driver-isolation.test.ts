/**
 * One device's trouble stays with that device: an attacker whose device
 * ops never settle (or take seconds each) keeps its own device busy, not
 * the bystander, which is in another device set: ops are serialised per
 * set, and nothing else waits for them. The daemon's drivers answer at
 * once, so this runs against the real server in a process of its own,
 * over fixture devices whose ops can be made slow.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PciRegion } from '../../src/base/uapi.js';
import { Hostile } from './harness.js';
import { THROW_AT } from './buggy-fixture.js';

const started: Hostile[] = [];
after(() => {
  for (const h of started) h.kill();
});

describe('hostile: a device whose ops never settle, or are slow', () => {
  for (const [name, delayMs] of [
    ['never settle', 2 ** 31 - 1],
    ['take 1.5 s each', 1_500],
  ] as const) {
    it(`ops that ${name}: the bystander and the server answer meanwhile`, async () => {
      const h = await Hostile.startServer({ attacker: { asyncOps: true, delayMs } });
      started.push(h);
      const c = await h.connectAttacker({ timeoutMs: 0 });
      await h.underAttack(async () => {
        // Pipelined: each waits for the one before (one device set, one lock).
        for (let k = 0; k < 4; k++) c.regionRead(PciRegion.BAR0, 0, 4).catch(() => {});
        await sleep(300);
        // What isolation does not give: another client of the same device
        // (or of its set) waits too; here its VERSION, which binds under the lock.
        const second = h.connectAttacker({ timeoutMs: 1_000 });
        if (delayMs > 60_000) await assert.rejects(second, (e: Error & { code?: string }) => e.code === 'ETIMEDOUT');
        else (await second.catch(() => null))?.close();
        await sleep(1_500);
      });
      c.close();
      await h.recovered();
      await h.stop();
    });
  }

  it("a device op that throws something unexpected is that request's EIO, logged; the session goes on", async () => {
    const h = await Hostile.startServer();
    started.push(h);
    const c = await h.connectAttacker();
    await h.underAttack(async () => {
      await assert.rejects(c.regionRead(PciRegion.BAR0, THROW_AT, 4), (e: Error & { code?: string }) => e.code === 'EIO');
      assert.equal((await c.regionRead(PciRegion.CONFIG, 0, 4)).length, 4);
    });
    await h.daemon.waitFor((l) => l.msg === 'vfio-user command failed unexpectedly' && l.device === 'attacker', 2_000);
    c.close();
    await h.recovered();
    await h.stop();
  });
});
