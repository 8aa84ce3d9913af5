/**
 * virtio-blk against a guest that gets things wrong, or goes away: every
 * malformed ring puts the device in DEVICE_NEEDS_RESET with a configuration
 * interrupt (never a hang, never a crash), a reset with requests in flight
 * leaves guest memory alone afterwards, and memory a client shrinks under
 * a running queue is an error of that device only.
 */
import assert from 'node:assert/strict';
import { ftruncateSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { PciIrq } from '../../src/base/uapi.js';
import { close, MappedMemory, memfdCreate } from '../../src/native/index.js';
import { Command, encodeDmaMap, VfioUserClient } from '../../src/vfio-user/index.js';
import { VIRTIO_ISR, VIRTIO_STATUS, VIRTQ_DESC } from '../../src/drivers/virtio/spec.js';
import { VIRTIO_BAR } from '../../src/drivers/virtio/virtio-pci-device.js';
import { VIRTIO_BLK_S, VIRTIO_BLK_T } from '../../src/drivers/virtio-blk/index.js';
import { until } from '../support/until.js';
import { GUEST_BASE, startBlk, type BlkBench } from './virtio-blk-harness.js';
import { LAYOUT, QUEUE_SIZE, VirtioGuest } from './virtio-guest.js';

let bench: BlkBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

const READ_4K = { type: VIRTIO_BLK_T.IN, sector: 0, readLength: 4096 };

/** Publishes what `damage` made of a prepared READ, kicks, and expects NEEDS_RESET and the config vector. */
async function expectNeedsReset(guest: VirtioGuest, damage: (head: number) => number): Promise<void> {
  const { head } = guest.prepare(READ_4K);
  await guest.publish(damage(head));
  await until(() => bench!.device.lastError !== null, 'the device noticed');
  assert.ok((await guest.status()) & VIRTIO_STATUS.NEEDS_RESET, 'NEEDS_RESET is set');
  assert.ok((await guest.irqs!.line(0).next()) >= 1n, 'the configuration vector fired');
  assert.equal(guest.usedIdx, 0, 'nothing was completed');
}

describe('virtio-blk: malformed rings put the device in NEEDS_RESET, and a reset brings it back', () => {
  const cases: Array<[string, (g: VirtioGuest, head: number) => number]> = [
    ['a head outside the table', () => QUEUE_SIZE + 3],
    [
      'a loop of NEXT descriptors',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, GUEST_BASE + LAYOUT.HEADER, 16, VIRTQ_DESC.F_NEXT, head + 1);
        g.desc(LAYOUT.DESC, head + 1, GUEST_BASE + LAYOUT.DATA, 16, VIRTQ_DESC.F_NEXT, head);
        return head;
      },
    ],
    [
      'a next index outside the table',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, GUEST_BASE + LAYOUT.HEADER, 16, VIRTQ_DESC.F_NEXT, 999);
        return head;
      },
    ],
    [
      'a buffer in memory the client never mapped',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, 0x7000_0000, 16, VIRTQ_DESC.F_NEXT, head + 1);
        return head;
      },
    ],
    [
      'an indirect table inside an indirect table',
      (g, head) => {
        const table = LAYOUT.INDIRECT;
        g.desc(table, 0, GUEST_BASE + LAYOUT.INDIRECT + 256, 32, VIRTQ_DESC.F_INDIRECT);
        g.desc(LAYOUT.DESC, head, GUEST_BASE + table, 16, VIRTQ_DESC.F_INDIRECT);
        return head;
      },
    ],
    [
      'an indirect table whose length is not whole descriptors',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, GUEST_BASE + LAYOUT.INDIRECT, 20, VIRTQ_DESC.F_INDIRECT);
        return head;
      },
    ],
    [
      'a loop inside an indirect table',
      (g, head) => {
        const table = LAYOUT.INDIRECT;
        g.desc(table, 0, GUEST_BASE + LAYOUT.HEADER, 16, VIRTQ_DESC.F_NEXT, 1);
        g.desc(table, 1, GUEST_BASE + LAYOUT.DATA, 16, VIRTQ_DESC.F_NEXT, 0);
        g.desc(LAYOUT.DESC, head, GUEST_BASE + table, 32, VIRTQ_DESC.F_INDIRECT);
        return head;
      },
    ],
    [
      'a readable buffer after a writable one',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, GUEST_BASE + LAYOUT.HEADER, 16, VIRTQ_DESC.F_NEXT | VIRTQ_DESC.F_WRITE, head + 1);
        g.desc(LAYOUT.DESC, head + 1, GUEST_BASE + LAYOUT.DATA, 16, 0);
        return head;
      },
    ],
    [
      'a request without room for its status',
      (g, head) => {
        g.desc(LAYOUT.DESC, head, GUEST_BASE + LAYOUT.HEADER, 16, 0);
        return head;
      },
    ],
  ];
  for (const [what, damage] of cases) {
    it(what, async () => {
      bench = await startBlk();
      const { guest } = await bench.connect();
      await guest.init();
      await expectNeedsReset(guest, (head) => damage(guest, head));
      // Kicks meanwhile are ignored; a reset and a new initialisation serve again.
      await guest.kick();
      assert.equal(bench.device.inFlight, 0);
      assert.equal(await guest.init(), VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER | VIRTIO_STATUS.FEATURES_OK | VIRTIO_STATUS.DRIVER_OK);
      assert.equal(bench.device.lastError, null);
      assert.equal((await guest.one(READ_4K)).status, VIRTIO_BLK_S.OK);
      guest.close();
    });
  }

  it('the available index moving past the queue size', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    await guest.init();
    guest.prepare(READ_4K);
    new DataView(guest.mem.buffer, guest.mem.byteOffset).setUint16(LAYOUT.AVAIL + 2, QUEUE_SIZE + 1, true);
    await guest.kick();
    await until(() => bench!.device.lastError !== null, 'the device noticed');
    assert.equal(bench.device.lastError!.code, 'EPROTO');
    assert.ok((await guest.status()) & VIRTIO_STATUS.NEEDS_RESET);
    guest.close();
  });
});

describe('virtio-blk: reset and teardown with requests in flight', () => {
  it('a reset while 48 writes of 3 MiB are in flight: status reads 0 once they settled, and guest memory is left alone after', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    await guest.init();
    // 144 MiB of writes (each on a libuv thread; reads the page cache holds are served at once):
    // past the 64 MiB of bounce buffers, so most of them wait or work for a while.
    const data = new Uint8Array(3 << 20).fill(0x5a);
    const heads = Array.from({ length: 48 }, () => guest.prepare({ type: VIRTIO_BLK_T.OUT, sector: 0, data, buffer: LAYOUT.DATA }).head);
    for (const h of heads) await guest.publish(h, false);
    await guest.kick();
    await until(() => bench!.device.inFlight > 0, 'requests in flight');
    await guest.setStatus(0);
    assert.ok(bench.device.inFlight > 0, 'the reset came with requests still in flight');
    // The driver waits for 0 (4.1.4.3.2); the device says 0 only once nothing is in flight.
    while ((await guest.status()) !== 0);
    assert.equal(bench.device.inFlight, 0, 'status read 0 with nothing in flight');
    const snapshot = guest.mem.slice(0, LAYOUT.SIZE);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(Buffer.from(guest.mem.subarray(0, LAYOUT.SIZE)).equals(snapshot), 'nothing touched guest memory after the reset');
    assert.ok(guest.usedIdx < heads.length, 'requests in flight at the reset were never completed');
    // The device serves a new initialisation at once.
    await guest.init();
    assert.equal((await guest.one(READ_4K)).status, VIRTIO_BLK_S.OK);
    guest.close();
  });

  it('the client goes away with requests in flight: nothing breaks, the next client starts afresh', async () => {
    bench = await startBlk();
    const first = await bench.connect();
    await first.guest.init();
    const heads = Array.from(
      { length: 32 },
      (_, i) => first.guest.prepare({ type: VIRTIO_BLK_T.OUT, sector: 128 * i, data: new Uint8Array(65536).fill(i) }).head,
    );
    for (const h of heads) await first.guest.publish(h, false);
    await first.guest.kick();
    first.guest.close();
    first.c.close();
    await until(() => bench!.device.openCount === 0, 'the session is gone');
    await until(() => bench!.device.inFlight === 0, 'the requests settled');
    const second = await bench.connect();
    assert.equal(await second.guest.status(), 0, 'the last close reset the virtio state');
    await second.guest.init();
    assert.equal((await second.guest.one(READ_4K)).status, VIRTIO_BLK_S.OK);
    second.guest.close();
  });
});

describe('virtio-blk: interrupts without MSI-X', () => {
  it('INTx: a completion raises the line, reading the ISR tells why and lowers it', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    await guest.init({ irq: 'intx' });
    const done = await guest.one(READ_4K);
    assert.equal(done.status, VIRTIO_BLK_S.OK);
    assert.ok((await guest.irqs!.line(0).next()) >= 1n, 'INTx fired');
    assert.equal(await guest.read(VIRTIO_BAR.ISR, 1), VIRTIO_ISR.QUEUE);
    assert.equal(await guest.read(VIRTIO_BAR.ISR, 1), 0, 'read-to-clear');
    // INTx is automasked until the client unmasks it, as QEMU does after the guest's EOI.
    await guest.c.setIrqs(PciIrq.INTX, 0, 1, 'unmask', 'none');
    await guest.one(READ_4K);
    assert.ok((await guest.irqs!.line(0).next()) >= 1n, 'INTx fired again');
    guest.close();
  });
});

describe('virtio-blk: client memory that shrinks under a running queue', () => {
  it('an unsealed memfd truncated: the device goes to NEEDS_RESET (EFAULT), the daemon and other devices live', async () => {
    bench = await startBlk();
    const other = await startBlk();
    const fd = memfdCreate('shrinking-guest', LAYOUT.SIZE);
    const view = MappedMemory.map(fd, 0, LAYOUT.SIZE);
    const c = await VfioUserClient.connect(bench.server.socketPath(bench.device.name)!);
    try {
      const map = encodeDmaMap(0, { readable: true, writable: true, offset: 0n, address: BigInt(GUEST_BASE), size: BigInt(LAYOUT.SIZE) });
      assert.equal((await c.request(Command.DMA_MAP, map.subarray(16), { fds: [fd] })).errorNo, 0);
      const guest = new VirtioGuest(c, view.bytes, GUEST_BASE);
      await guest.init();
      assert.equal((await guest.one(READ_4K)).status, VIRTIO_BLK_S.OK, 'it works while the memory is there');
      const { head } = guest.prepare(READ_4K);
      await guest.publish(head, false);
      ftruncateSync(fd, 0); // from here on the test must not touch `view` either
      await guest.kick();
      await until(() => bench!.device.lastError !== null, 'the device noticed');
      assert.equal(bench.device.lastError!.code, 'EFAULT');
      assert.ok((await guest.status()) & VIRTIO_STATUS.NEEDS_RESET);
      // Another device of the same daemon serves on.
      const o = await other.connect();
      await o.guest.init();
      assert.equal((await o.guest.one(READ_4K)).status, VIRTIO_BLK_S.OK);
      o.guest.close();
      guest.close();
    } finally {
      c.close();
      await other.close();
      view.close();
      close(fd);
    }
  });
});
