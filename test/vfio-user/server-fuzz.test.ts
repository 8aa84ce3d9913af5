/**
 * Seeded fuzzing of the whole server through a real socket: valid messages
 * of every command with random bytes, commands, flags and fds mutated in,
 * each followed by a probe. The server must answer the probe (or have ended
 * the session cleanly), never throw, and leave no fd behind.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { closeFds, EventFd, MappedMemory } from '../../src/native/index.js';
import {
  Command,
  encodeDeviceFeature,
  encodeDeviceInfoRequest,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfoRequest,
  encodeMessage,
  encodeMigDataRead,
  encodeMigDataWrite,
  encodeRegionInfoRequest,
  encodeRegionIoFdsRequest,
  encodeRegionRead,
  encodeRegionWrite,
  encodeSetIrqs,
  encodeWriteMulti,
  HeaderFlags,
} from '../../src/vfio-user/index.js';
import { prng } from './harness.js';
import { perTestServer, RawPeer, type Bench } from './server-harness.js';

const PROBE_ID = 0xfffe;

function seeds(): Uint8Array[] {
  return [
    encodeDeviceInfoRequest(1),
    encodeRegionInfoRequest(1, PciRegion.BAR2, 80),
    encodeRegionIoFdsRequest(1, PciRegion.BAR0, 64),
    encodeIrqInfoRequest(1, PciIrq.MSIX),
    encodeSetIrqs(1, { index: PciIrq.MSIX, start: 0, count: 2, action: 'trigger', data: 'eventfd' }),
    encodeSetIrqs(1, { index: PciIrq.MSI, start: 1, count: 3, action: 'trigger', data: 'bool', values: [true, false, true] }),
    encodeRegionRead(1, 8, PciRegion.BAR0, 4),
    encodeRegionWrite(1, 0x300, PciRegion.BAR0, new Uint8Array([1, 2, 3, 4])),
    encodeWriteMulti(1, [{ region: PciRegion.CONFIG, offset: 4, data: new Uint8Array([1, 2]) }]),
    encodeDmaMap(1, { readable: true, writable: true, offset: 0n, address: 0x10000n, size: 4096n }),
    encodeDmaUnmap(1, { address: 0x10000n, size: 4096n }),
    encodeDmaUnmap(1, { all: true, address: 0n, size: 0n }),
    encodeMessage(1, Command.DEVICE_RESET, 0),
    encodeDeviceFeature(1, { feature: 2, get: true, set: false, probe: false, data: new Uint8Array(0), argsz: 16 }),
    encodeMigDataRead(1, 16),
    encodeMigDataWrite(1, new Uint8Array([9, 9])),
  ];
}

let bench: Bench;
perTestServer({}, (b) => {
  bench = b;
});

describe('fuzzing the server through a socket', () => {
  it('2,000 mutated messages: every probe answered, or the session ended (or was dropped after lying about a size); no fd left', async () => {
    const rnd = prng(0x5eed);
    const samples = seeds();
    const mem = MappedMemory.create('fuzz', 4096);
    const events = [EventFd.create(), EventFd.create(), EventFd.create()];
    let peer = new RawPeer(bench.path());
    await peer.negotiate();
    let answered = 0;
    let ended = 0;
    for (let i = 0; i < 2000; i++) {
      const m = rnd.pick(samples).slice();
      const bodyLen = m.length - 16;
      const flips = rnd.int(4);
      for (let f = 0; f < flips && bodyLen > 0; f++) m[16 + rnd.int(bodyLen)] = rnd.int(256);
      if (rnd.int(8) === 0) m[2] = rnd.int(20); // another command
      if (rnd.int(10) === 0) m[8] = rnd.pick([0, 1, 2, HeaderFlags.NO_REPLY, HeaderFlags.ERROR]);
      bench.device.asyncOps = rnd.int(4) === 0;
      const fdChoice = rnd.int(6);
      const fds = fdChoice === 0 ? [mem.fd] : fdChoice === 1 ? events.slice(0, 1 + rnd.int(3)).map((e) => e.fd) : [];
      // Now and then a msg_size that lies: the stream is garbage from there.
      const garbage = rnd.int(50) === 0;
      if (garbage) new DataView(m.buffer).setUint32(4, rnd.int(4) === 0 ? rnd.int(16) : 16 + rnd.int(m.length + 64), true);
      peer.write(m, fds);
      peer.write(encodeDeviceInfoRequest(PROBE_ID));
      for (;;) {
        const f = await peer.next(garbage ? 200 : 3000).catch(() => null);
        if (f === null) {
          ended++;
          peer.close();
          peer = new RawPeer(bench.path());
          await peer.negotiate();
          break;
        }
        closeFds(f.fds); // a region info reply carries the region's fd
        if (f.msgId === PROBE_ID && f.cmd === Command.DEVICE_GET_INFO) {
          assert.equal(f.errorNo, 0);
          answered++;
          break;
        }
      }
    }
    peer.close();
    mem.close();
    for (const e of events) e.close();
    assert.equal(answered + ended, 2000);
    assert.ok(answered > 1500, `${answered} probes answered`);
  });
});
