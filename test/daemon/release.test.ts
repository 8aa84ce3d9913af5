/**
 * awaitRelease's clock: reports come at their time and not before, the
 * drop at the deadline and not before, whatever clock the timers keep.
 * The server here only answers who holds a device; the whole path through
 * a real daemon and client is in clients.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { awaitRelease, FIRST_REPORT_MS, type ReleaseOptions } from '../../src/daemon/release.js';
import type { DeviceClient } from '../../src/daemon/protocol.js';

const HOLDER: DeviceClient = { id: 1, pid: 4242, uid: 0, gid: 0, command: 'qemu-system-x86_64', connectedAt: 0, bound: true };

/** A removal nobody lets go of, dropped after `deadlineMs`: what was reported and dropped, and when. */
async function hold(deadlineMs: number, removed: Promise<unknown> = new Promise(() => {})) {
  const reports: number[] = [];
  const drops: number[] = [];
  const server: ReleaseOptions['server'] = {
    clients: () => [HOLDER],
    dropClient: () => Promise.resolve(true),
    watchRequests: () => ({ asked: () => true, close: () => {} }),
  };
  const dropped = await awaitRelease({
    server,
    uuids: ['d1'],
    removed,
    deadlineMs,
    dropReason: 'test',
    onWaiting: (_uuid, _clients, waitedMs) => reports.push(waitedMs),
    onDropping: (_uuid, _clients, waitedMs) => drops.push(waitedMs),
  });
  return { reports, drops, dropped };
}

describe('awaitRelease', () => {
  it('a deadline under the first report drops once at the deadline and reports nothing, even when a timer fires early', async () => {
    // Timers fire up to a millisecond early by Date.now(); with 50 removals
    // side by side, that used to happen to several, each logging a "held"
    // report a second early.
    const deadlines = Array.from({ length: 50 }, (_, i) => 200 + (i % 7) * 13);
    const runs = await Promise.all(deadlines.map((d) => hold(d)));
    runs.forEach(({ reports, drops, dropped }, i) => {
      assert.deepEqual(reports, [], `removal ${i} (deadline ${deadlines[i]} ms) reported early: ${reports.join(', ')} ms`);
      assert.equal(drops.length, 1);
      assert.ok(drops[0]! >= deadlines[i]!, `dropped after ${drops[0]} ms, before the ${deadlines[i]} ms deadline`);
      assert.deepEqual(dropped.get('d1'), [HOLDER]);
    });
  });

  it('reports once the first report is due, then drops at the deadline', async () => {
    const { reports, drops } = await hold(FIRST_REPORT_MS + 300);
    assert.equal(reports.length, 1, `reports at ${reports.join(', ')} ms`);
    assert.ok(reports[0]! >= FIRST_REPORT_MS, `reported after ${reports[0]} ms`);
    assert.equal(drops.length, 1);
    assert.ok(drops[0]! >= FIRST_REPORT_MS + 300, `dropped after ${drops[0]} ms`);
  });

  it('a removal that ends first drops nobody and reports nothing', async () => {
    const { reports, drops, dropped } = await hold(5_000, new Promise((resolve) => setTimeout(resolve, 50)));
    assert.deepEqual(reports, []);
    assert.deepEqual(drops, []);
    assert.equal(dropped.size, 0);
  });
});
