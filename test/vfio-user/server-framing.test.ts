/**
 * What a socket does to messages, done on purpose through a real socket:
 * every sample message cut at every byte boundary (the server reads the
 * first part before the rest is written), messages coalesced into one
 * write, and a 1 MiB body delivered in random pieces.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { MappedMemory } from '../../src/native/index.js';
import {
  Command,
  decodeDeviceInfoReply,
  decodeRegionReadReply,
  encodeDeviceInfoRequest,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfoRequest,
  encodeMessage,
  encodeRegionInfoRequest,
  encodeRegionRead,
  encodeRegionWrite,
  encodeSetIrqs,
  encodeWriteMulti,
  type Frame,
} from '../../src/vfio-user/index.js';
import { prng } from './harness.js';
import { perTestServer, RawPeer, tick, versionText, type Bench } from './server-harness.js';

let bench: Bench;

perTestServer({ device: { bar2Size: 1024 * 1024 } }, (b) => {
  bench = b;
});

/** Sample commands of a session, with what their reply must show. */
function samples(): { name: string; bytes: Uint8Array; fd?: boolean; check(f: Frame): void }[] {
  const ok = (cmd: number, size: number) => (f: Frame) => {
    assert.deepEqual([f.cmd, f.errorNo, f.size], [cmd, 0, size]);
  };
  return [
    { name: 'DEVICE_GET_INFO', bytes: encodeDeviceInfoRequest(1), check: (f) => assert.equal(decodeDeviceInfoReply(f.body, []).numRegions, 9) },
    { name: 'GET_REGION_INFO', bytes: encodeRegionInfoRequest(2, PciRegion.CONFIG, 64), check: ok(Command.DEVICE_GET_REGION_INFO, 16 + 48) },
    { name: 'GET_IRQ_INFO', bytes: encodeIrqInfoRequest(3, PciIrq.MSIX), check: ok(Command.DEVICE_GET_IRQ_INFO, 32) },
    {
      name: 'REGION_WRITE',
      bytes: encodeRegionWrite(4, 0x30, PciRegion.BAR0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])),
      check: ok(Command.REGION_WRITE, 32),
    },
    {
      name: 'REGION_READ',
      bytes: encodeRegionRead(5, 0x30, PciRegion.BAR0, 8),
      check: (f) => assert.deepEqual([...decodeRegionReadReply(f.body, []).data], [1, 2, 3, 4, 5, 6, 7, 8]),
    },
    {
      name: 'SET_IRQS',
      bytes: encodeSetIrqs(6, { index: PciIrq.MSI, start: 0, count: 2, action: 'trigger', data: 'bool', values: [true, false] }),
      check: ok(Command.DEVICE_SET_IRQS, 16),
    },
    {
      name: 'WRITE_MULTI',
      bytes: encodeWriteMulti(7, [{ region: PciRegion.BAR0, offset: 0x40, data: new Uint8Array([9]) }]),
      check: ok(Command.REGION_WRITE_MULTI, 24),
    },
    {
      name: 'DMA_MAP with fd',
      bytes: encodeDmaMap(8, { readable: true, writable: true, offset: 0n, address: 0x10000n, size: 4096n }),
      fd: true,
      check: ok(Command.DMA_MAP, 16),
    },
    { name: 'DMA_UNMAP', bytes: encodeDmaUnmap(9, { address: 0x10000n, size: 4096n }), check: ok(Command.DMA_UNMAP, 40) },
    { name: 'DEVICE_RESET', bytes: encodeMessage(10, Command.DEVICE_RESET, 0), check: ok(Command.DEVICE_RESET, 16) },
  ];
}

describe('framing through a real socket', () => {
  it('every sample message, cut at every byte boundary, is served once and right', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    const mem = MappedMemory.create('split', 4096);
    let cuts = 0;
    for (const s of samples()) {
      for (let at = 1; at < s.bytes.length; at++) {
        if (s.name === 'DMA_UNMAP') {
          peer.write(encodeDmaMap(98, { readable: true, writable: true, offset: 0n, address: 0x10000n, size: 4096n }), [mem.fd]);
          assert.equal((await peer.next())!.errorNo, 0);
        }
        peer.write(s.bytes.subarray(0, at), s.fd === true ? [mem.fd] : undefined);
        await tick(); // the server reads the first part on its own
        peer.write(s.bytes.subarray(at));
        const reply = (await peer.next())!;
        assert.equal(reply.msgId, s.bytes[0], `${s.name} cut at ${at}`);
        s.check(reply);
        if (s.fd === true) {
          peer.write(encodeDmaUnmap(99, { address: 0x10000n, size: 4096n }));
          assert.equal((await peer.next())!.errorNo, 0);
        }
        cuts++;
      }
    }
    assert.ok(cuts > 300);
    mem.close();
    peer.close();
  });

  it('messages coalesced into one write are each answered, in order', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    const mem = MappedMemory.create('coalesced', 4096);
    const all = samples();
    const joined = new Uint8Array(all.reduce((n, s) => n + s.bytes.length, 0));
    let o = 0;
    for (const s of all) {
      joined.set(s.bytes, o);
      o += s.bytes.length;
    }
    // The fd rides on the first byte of the write: a lone DMA_MAP first.
    const map = all.find((s) => s.fd === true)!;
    peer.write(map.bytes, [mem.fd]);
    map.check((await peer.next())!);
    peer.write(joined.subarray(0, joined.length)); // DMA_MAP again without fd: message-backed, overlap → EEXIST
    for (const s of all) {
      const reply = (await peer.next())!;
      assert.equal(reply.msgId, s.bytes[0]);
      if (s.fd === true) assert.equal(reply.errorNo, 17);
      else s.check(reply);
    }
    mem.close();
    peer.close();
  });

  it('a 1 MiB REGION_WRITE arriving in random pieces is received whole', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    const rnd = prng(7);
    const data = new Uint8Array(1024 * 1024).map(() => rnd.int(256));
    const message = encodeRegionWrite(11, 0, PciRegion.BAR2, data);
    for (let o = 0; o < message.length;) {
      const n = Math.min(message.length - o, 1 + rnd.int(200_000));
      peer.write(message.subarray(o, o + n));
      o += n;
      if (rnd.int(3) === 0) await tick();
    }
    const reply = (await peer.next(5000))!;
    assert.deepEqual([reply.msgId, reply.errorNo, reply.size], [11, 0, 32]);
    assert.deepEqual(bench.device.bar2.bytes, data);
    peer.write(encodeRegionRead(12, 0, PciRegion.BAR2, 1024 * 1024));
    const back = (await peer.next(5000))!;
    assert.equal(back.size, 32 + 1024 * 1024);
    assert.deepEqual(back.body.subarray(16), data);
    peer.close();
  });

  it('a VERSION cut into single bytes negotiates', async () => {
    const peer = new RawPeer(bench.path());
    const v = encodeMessage(1, Command.VERSION, 0, versionText(0, 2, '{"capabilities":{"max_msg_fds":4}}'));
    for (let i = 0; i < v.length; i++) {
      peer.write(v.subarray(i, i + 1));
      if (i % 7 === 0) await tick();
    }
    const reply = (await peer.next())!;
    assert.deepEqual([reply.cmd, reply.errorNo], [Command.VERSION, 0]);
    peer.close();
  });
});
