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
import { PciIrq, PciRegion, VfioCore } from '../../src/core/index.js';
import { MttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { MAX_TRACES, TRACE_BACKLOG_BYTES, TraceFeed } from '../../src/daemon/trace-feed.js';
import type { TraceEvent, TraceMessage } from '../../src/daemon/trace-record.js';
import { VfioUserClient, VfioUserServer } from '../../src/vfio-user/index.js';
import { DMA_CHANNEL } from '../../src/iommufd/index.js';
import { INTERRUPT_CHANNEL, MESSAGE_CHANNEL, SESSION_CHANNEL } from '../../src/vfio-user/trace.js';
import { DMA_BUF, DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, FixtureDevice, REG_IOVA, REG_LEN } from '../vfio-user/fixture-device.js';

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

const subscribed = () => [MESSAGE_CHANNEL, SESSION_CHANNEL, INTERRUPT_CHANNEL, DMA_CHANNEL].map((n) => channel(n).hasSubscribers);
const NONE = [false, false, false, false];
const ALL = [true, true, true, true];

describe('TraceFeed', () => {
  it('while nobody traces: no subscriber, no register named; a tap subscribes, and its close lets go', async () => {
    await server.serve(card);
    const client = await VfioUserClient.connect(server.socketPath(card.name)!);
    const feed = new TraceFeed(core);
    assert.deepEqual(subscribed(), NONE);
    await client.regionWrite(0, 3, Uint8Array.of(0x03));
    await client.regionRead(0, 3, 1);
    assert.equal(card.named, 0, 'no trace: the naming hook never ran');

    const got: TraceEvent[] = [];
    const tap = feed.tap(card.name, { emit: (e) => got.push(e), backlog: () => 0 });
    assert.deepEqual(subscribed(), ALL);
    await client.regionWrite(0, 7, Uint8Array.of(0x42));
    assert.equal(card.named, 1);
    assert.deepEqual(
      got.map((e) => (e as TraceMessage).register),
      ['port0 SCR'],
    );
    tap.close();
    tap.close();
    assert.deepEqual(subscribed(), NONE);
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

  it('DMA the device does to the client memory is traced, with its client, direction, address and length', async () => {
    const fixture = new FixtureDevice({ name: 'feed-dma', core });
    fixture.register();
    await server.serve(fixture);
    const client = await VfioUserClient.connect(server.socketPath(fixture.name)!);
    const u64 = (v: number) => new Uint8Array(new BigUint64Array([BigInt(v)]).buffer);
    try {
      await client.dmaMapMemory(0x10000, 0x1000);
      await client.regionWrite(PciRegion.BAR0, REG_IOVA, u64(0x10020));
      await client.regionWrite(PciRegion.BAR0, REG_LEN, u64(16));
      fixture.bar0.fill(0x5c, DMA_BUF, DMA_BUF + 16);
      const got: TraceEvent[] = [];
      const tap = new TraceFeed(core).tap(fixture.name, { emit: (e) => got.push(e), backlog: () => 0 });
      await client.regionWrite(PciRegion.BAR0, DOORBELL_DMA_WRITE, u64(1));
      await client.regionWrite(PciRegion.BAR0, DOORBELL_DMA_READ, u64(1));
      tap.close();
      const dma = got.filter((e) => e.type === 'dma');
      assert.deepEqual(
        dma.map((d) => [d.op, d.iova, d.length, d.from]),
        [
          ['write', '0x10020', 16, 'server'],
          ['read', '0x10020', 16, 'server'],
        ],
      );
      assert.ok(dma.every((d) => d.client === (got.find((e) => e.type === 'message') as TraceMessage).client));
    } finally {
      client.close();
      await fixture.unregister();
    }
  });

  it('an interrupt a command raises comes after that command', async () => {
    const client = await VfioUserClient.connect(server.socketPath(card.name)!);
    await client.setIrqEventfds(PciIrq.INTX, 0, 1);
    await client.regionWrite(0, 1, Uint8Array.of(0x00));
    const got: TraceEvent[] = [];
    const tap = new TraceFeed(core).tap(card.name, { emit: (e) => got.push(e), backlog: () => 0 });
    await client.regionWrite(0, 1, Uint8Array.of(0x02)); // IER THRI: THR is empty, so the line rises at once
    tap.close();
    client.close();
    assert.deepEqual(
      got.map((e) => (e.type === 'message' ? `${e.cmd} ${e.register}` : e.type === 'interrupt' ? `interrupt ${e.irq}` : e.type)),
      ['REGION_WRITE port0 IER', 'interrupt INTX'],
    );
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
    assert.deepEqual(subscribed(), NONE);
  });
});
