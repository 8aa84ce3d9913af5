/**
 * virtio-blk over vfio-user: a guest driver (VirtioGuest) plays Linux's
 * virtio_pci + virtio_blk through the client library over a real socket,
 * with its memory reached both ways (an fd the server maps, DMA messages).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { PciRegion } from '../../src/base/uapi.js';
import { PCI_CAP_ID, PCI_HEADER } from '../../src/pci/index.js';
import { featureBit, VIRTIO_F, VIRTIO_PCI_CAP, VIRTIO_STATUS } from '../../src/drivers/virtio/spec.js';
import { VIRTIO_BLK_CONFIG, VIRTIO_BLK_F, VIRTIO_BLK_LIMITS, VIRTIO_BLK_S, VIRTIO_BLK_T } from '../../src/drivers/virtio-blk/index.js';
import { VIRTIO_BAR } from '../../src/drivers/virtio/virtio-pci-device.js';
import { startBlk, IMAGE_BYTES, type BlkBench, type DmaPath } from './virtio-blk-harness.js';

let bench: BlkBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

/** The image as a Uint8Array (deepEqual tells a Buffer from one). */
function fileBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe('virtio-blk: what a guest driver probes', () => {
  it('is 1af4:1042 with the common, notify, ISR and device capabilities in BAR0, and MSI-X for config + 1 queue', async () => {
    bench = await startBlk();
    const { c } = await bench.connect();
    const cfg = await c.regionRead(PciRegion.CONFIG, 0, 256);
    const v = new DataView(cfg.buffer, cfg.byteOffset, 256);
    assert.equal(v.getUint16(PCI_HEADER.VENDOR_ID, true), 0x1af4);
    assert.equal(v.getUint16(PCI_HEADER.DEVICE_ID, true), 0x1042);
    assert.ok(v.getUint8(PCI_HEADER.REVISION_ID) >= 1, 'revision 1: modern only');
    const caps = new Map<number, { bar: number; offset: number; length: number; multiplier?: number }>();
    let msixAt = 0;
    for (let at = v.getUint8(PCI_HEADER.CAPABILITY_LIST), n = 0; at !== 0 && n < 48; at = v.getUint8(at + 1), n++) {
      const id = v.getUint8(at);
      if (id === PCI_CAP_ID.MSIX) msixAt = at;
      if (id !== PCI_CAP_ID.VNDR) continue;
      const type = v.getUint8(at + 3);
      caps.set(type, {
        bar: v.getUint8(at + 4),
        offset: v.getUint32(at + 8, true),
        length: v.getUint32(at + 12, true),
        ...(type === VIRTIO_PCI_CAP.NOTIFY_CFG ? { multiplier: v.getUint32(at + 16, true) } : {}),
      });
    }
    assert.deepEqual([...caps.keys()].sort(), [1, 2, 3, 4]);
    for (const cap of caps.values()) {
      assert.equal(cap.bar, 0);
      assert.ok(cap.offset + cap.length <= VIRTIO_BAR.SIZE);
    }
    assert.equal(caps.get(VIRTIO_PCI_CAP.NOTIFY_CFG)!.multiplier, 4);
    assert.ok(msixAt > 0, 'MSI-X capability');
    assert.equal((v.getUint16(msixAt + 2, true) & 0x7ff) + 1, 2);
    assert.equal((await c.getRegionInfo(0)).size, VIRTIO_BAR.SIZE);
    // Device configuration: capacity in sectors, seg_max, size_max, blk_size.
    const dc = await c.regionRead(0, VIRTIO_BAR.DEVICE, VIRTIO_BLK_CONFIG.SIZE);
    const d = new DataView(dc.buffer, dc.byteOffset, dc.length);
    assert.equal(d.getBigUint64(VIRTIO_BLK_CONFIG.CAPACITY, true), BigInt(IMAGE_BYTES / 512));
    assert.equal(d.getUint32(VIRTIO_BLK_CONFIG.SEG_MAX, true), VIRTIO_BLK_LIMITS.SEG_MAX);
    assert.equal(d.getUint32(VIRTIO_BLK_CONFIG.SIZE_MAX, true), VIRTIO_BLK_LIMITS.SIZE_MAX);
    assert.equal(d.getUint32(VIRTIO_BLK_CONFIG.BLK_SIZE, true), 512);
  });

  it('offers VERSION_1, indirect descriptors, EVENT_IDX, FLUSH; FEATURES_OK does not stick without VERSION_1', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    const offered = await guest.deviceFeatures();
    for (const bit of [VIRTIO_F.VERSION_1, VIRTIO_F.RING_INDIRECT_DESC, VIRTIO_F.RING_EVENT_IDX, VIRTIO_BLK_F.FLUSH, VIRTIO_BLK_F.SEG_MAX]) {
      assert.ok(offered & featureBit(bit), `feature ${bit} offered`);
    }
    assert.equal(offered & featureBit(VIRTIO_BLK_F.RO), 0n);
    const status = await guest.init({ accept: (f) => f & ~featureBit(VIRTIO_F.VERSION_1) });
    assert.equal(status & VIRTIO_STATUS.FEATURES_OK, 0);
    const ok = await guest.init();
    assert.equal(ok, VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER | VIRTIO_STATUS.FEATURES_OK | VIRTIO_STATUS.DRIVER_OK);
    guest.close();
  });
});

for (const path of ['fd', 'messages'] as DmaPath[]) {
  describe(`virtio-blk requests, guest memory reached by ${path === 'fd' ? 'the mapped fd' : 'DMA messages'}`, () => {
    it('READ returns the image, WRITE lands in the file, an MSI-X vector per completion', async () => {
      bench = await startBlk();
      const { c, guest } = await bench.connect(path);
      await guest.init();
      const read = await guest.one({ type: VIRTIO_BLK_T.IN, sector: 8, readLength: 4096 });
      assert.equal(read.status, VIRTIO_BLK_S.OK);
      assert.equal(read.len, 4097, 'the data and the status byte were written');
      assert.deepEqual(read.data, fileBytes(bench.image).subarray(8 * 512, 8 * 512 + 4096));
      assert.ok((await guest.irqs!.line(1).next()) >= 1n, 'the queue vector fired');
      const data = pattern(64 * 1024, 7);
      const write = await guest.one({ type: VIRTIO_BLK_T.OUT, sector: 100, data, segment: 32 * 1024 });
      assert.equal(write.status, VIRTIO_BLK_S.OK);
      assert.deepEqual(fileBytes(bench.image).subarray(100 * 512, 100 * 512 + data.length), data);
      const back = await guest.one({ type: VIRTIO_BLK_T.IN, sector: 100, readLength: data.length, segment: 16 * 1024, indirect: true });
      assert.deepEqual(back.data, data);
      if (path === 'messages') assert.ok(c.dma.served.reads > 0 && c.dma.served.writes > 0, 'the device went through DMA messages');
      else assert.equal(c.dma.served.reads + c.dma.served.writes, 0, 'no DMA message with mapped memory');
      guest.close();
    });

    it('indirect descriptors, many requests in one kick, FLUSH, GET_ID, an unknown type', async () => {
      bench = await startBlk();
      const { guest } = await bench.connect(path);
      await guest.init();
      const writes = Array.from({ length: 16 }, (_, i) => ({
        type: VIRTIO_BLK_T.OUT,
        sector: 1000 + 16 * i,
        data: pattern(8192, i + 1),
        indirect: true,
        segment: 4096,
      }));
      for (const done of await guest.submit(writes)) assert.equal(done.status, VIRTIO_BLK_S.OK);
      const file = fileBytes(bench.image);
      writes.forEach((w, i) => assert.deepEqual(file.subarray(w.sector * 512, w.sector * 512 + 8192), w.data, `write ${i}`));
      const reads = await guest.submit(
        writes.map((w) => ({ type: VIRTIO_BLK_T.IN, sector: w.sector, readLength: 8192, indirect: true, segment: 2048 })),
      );
      reads.forEach((r, i) => assert.deepEqual(r.data, writes[i]!.data));
      assert.equal((await guest.one({ type: VIRTIO_BLK_T.FLUSH })).status, VIRTIO_BLK_S.OK);
      const id = await guest.one({ type: VIRTIO_BLK_T.GET_ID, readLength: 20 });
      assert.equal(id.status, VIRTIO_BLK_S.OK);
      assert.equal(new TextDecoder().decode(id.data).replace(/\0+$/, ''), 'vblk0');
      assert.equal((await guest.one({ type: 0x77 })).status, VIRTIO_BLK_S.UNSUPP);
      guest.close();
    });
  });
}

describe('virtio-blk: requests that fail, and the device that goes on', () => {
  it('past the capacity, or not whole sectors: IOERR, and nothing written', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    await guest.init();
    const before = fileBytes(bench.image);
    const last = IMAGE_BYTES / 512;
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.IN, sector: last - 1, readLength: 1024 })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.OUT, sector: last, data: pattern(512, 3) })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.OUT, sector: 0, data: pattern(100, 3) })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.IN, sector: 2 ** 52, readLength: 512 })).status, VIRTIO_BLK_S.IOERR);
    assert.deepEqual(fileBytes(bench.image), before);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.IN, sector: last - 1, readLength: 512 })).status, VIRTIO_BLK_S.OK);
    guest.close();
  });

  it('read-only: offers RO, WRITE is IOERR and the file is untouched, READ and FLUSH work', async () => {
    bench = await startBlk({ readOnly: true });
    const { guest } = await bench.connect();
    await guest.init();
    assert.ok(guest.offered & featureBit(VIRTIO_BLK_F.RO));
    const before = fileBytes(bench.image);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.OUT, sector: 0, data: pattern(4096, 9) })).status, VIRTIO_BLK_S.IOERR);
    assert.deepEqual(fileBytes(bench.image), before);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.IN, sector: 0, readLength: 512 })).status, VIRTIO_BLK_S.OK);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.FLUSH })).status, VIRTIO_BLK_S.OK);
    guest.close();
  });

  it('a backing file whose I/O fails: the request reports IOERR, the device and the daemon go on', async () => {
    bench = await startBlk();
    const { guest } = await bench.connect();
    await guest.init();
    // The daemon's own handle on the image goes bad (closed under the device): every pread fails (EBADF).
    await bench.device.backend.handle.close();
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.IN, sector: 0, readLength: 4096 })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.OUT, sector: 0, data: pattern(4096, 1) })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.one({ type: VIRTIO_BLK_T.FLUSH })).status, VIRTIO_BLK_S.IOERR);
    assert.equal((await guest.status()) & VIRTIO_STATUS.NEEDS_RESET, 0, "a backing error is the request's, not the device's");
    guest.close();
  });
});
