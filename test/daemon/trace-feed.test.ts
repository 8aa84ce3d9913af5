/**
 * The daemon's trace feed over a real vfio-user server and client: nothing
 * is subscribed, built or named while nobody traces; a reader that falls
 * behind gets events dropped and counted, then told; the number of
 * traces is bounded.
 */
import { strict as assert } from 'node:assert';
import { channel } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { VfioCore } from '../../src/core/index.js';
import { MttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { MAX_TRACES, TRACE_BACKLOG_BYTES, TraceFeed } from '../../src/daemon/trace-feed.js';
import type { TraceEvent, TraceMessage } from '../../src/daemon/trace-record.js';
import { VfioUserClient, VfioUserServer } from '../../src/vfio-user/index.js';
import { INTERRUPT_CHANNEL, MESSAGE_CHANNEL, SESSION_CHANNEL } from '../../src/vfio-user/trace.js';

/** An mtty card that counts how often a trace asked it to name an access. */
class CountingMtty extends MttyDevice {
  named = 0;
  override describeAccess(index: number, offset: number, size: number, write: boolean): string | undefined {
    this.named++;
    return super.describeAccess(index, offset, size, write);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'uvfio-feed-'));
const core = new VfioCore({ requestBackoffMs: () => 20 });
const server = new VfioUserServer({ core, socketDir: dir });
const card = new CountingMtty({ name: 'feed-mtty', core, ports: 1 });
card.register();
after(async () => {
  await server.close();
  await card.unregister();
  rmSync(dir, { recursive: true, force: true });
});

const subscribed = () => [MESSAGE_CHANNEL, SESSION_CHANNEL, INTERRUPT_CHANNEL].map((n) => channel(n).hasSubscribers);

describe('TraceFeed', () => {
  it('while nobody traces: no subscriber, no register named; a tap subscribes, and its close lets go', async () => {
    await server.serve(card);
    const client = await VfioUserClient.connect(server.socketPath(card.name)!);
    const feed = new TraceFeed(core);
    assert.deepEqual(subscribed(), [false, false, false]);
    await client.regionWrite(0, 3, Uint8Array.of(0x03));
    await client.regionRead(0, 3, 1);
    assert.equal(card.named, 0, 'no trace: the naming hook never ran');

    const got: TraceEvent[] = [];
    const tap = feed.tap(card.name, { emit: (e) => got.push(e), backlog: () => 0 });
    assert.deepEqual(subscribed(), [true, true, true]);
    await client.regionWrite(0, 7, Uint8Array.of(0x42));
    assert.equal(card.named, 1);
    assert.deepEqual(
      got.map((e) => (e as TraceMessage).register),
      ['port0 SCR'],
    );
    tap.close();
    tap.close();
    assert.deepEqual(subscribed(), [false, false, false]);
    await client.regionRead(0, 7, 1);
    assert.equal(card.named, 1, 'after the tap closed nothing is named again');
    assert.equal(got.length, 1);
    client.close();
  });

  it('a reader past the backlog limit has events dropped and counted, then a dropped line once it caught up', async () => {
    const client = await VfioUserClient.connect(server.socketPath(card.name)!);
    const feed = new TraceFeed(core);
    let backlog = TRACE_BACKLOG_BYTES + 1;
    const got: TraceEvent[] = [];
    const tap = feed.tap(card.name, { emit: (e) => got.push(e), backlog: () => backlog });
    for (let i = 0; i < 5; i++) await client.regionRead(0, 5, 1);
    assert.deepEqual([got.length, tap.dropped, tap.events], [0, 5, 0]);
    backlog = 0;
    await client.regionRead(0, 7, 1);
    assert.deepEqual(
      got.map((e) => e.type),
      ['dropped', 'message'],
    );
    assert.equal((got[0] as { count: number }).count, 5);
    assert.deepEqual([tap.dropped, tap.events], [5, 1]);
    tap.close();
    client.close();
  });

  it(`at most ${MAX_TRACES} taps at once: EUSERS past it`, () => {
    const feed = new TraceFeed(core);
    const sink = { emit: () => {}, backlog: () => 0 };
    const taps = Array.from({ length: MAX_TRACES }, () => feed.tap(card.name, sink));
    assert.throws(
      () => feed.tap(card.name, sink),
      (e: Error & { code?: string }) => e.code === 'EUSERS',
    );
    taps[0]!.close();
    const again = feed.tap(card.name, sink);
    for (const t of [again, ...taps]) t.close();
    assert.deepEqual(subscribed(), [false, false, false]);
  });
});
