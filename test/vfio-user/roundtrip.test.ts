import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Feature, IrqSetFlags, MigState, PciIrq, PciRegion, RegionFlags } from '../../src/base/uapi.js';
import {
  Command,
  decodeCommand,
  encodeDeviceInfoReply,
  encodeDeviceInfoRequest,
  encodeDeviceReset,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeDmaUnmapReply,
  encodeDmaWriteReply,
  encodeEmptyReply,
  encodeErrorReply,
  encodeIrqInfoReply,
  encodeIrqInfoRequest,
  encodeMigDataRead,
  encodeMigDataWrite,
  encodeRegionInfoReply,
  encodeRegionInfoRequest,
  encodeRegionIoFdsRequest,
  encodeRegionRead,
  encodeRegionWrite,
  encodeRegionWriteReply,
  encodeSetIrqs,
  encodeWriteMulti,
  encodeWriteMultiReply,
  decodeReply,
  encodeDeviceFeature,
  encodeDeviceFeatureReply,
  encodeDmaRead,
  encodeDmaReadReply,
  encodeDmaWrite,
  encodeMigDataReadReply,
  encodeRegionIoFdsReply,
  encodeRegionReadReply,
  encodeVersionCommand,
  encodeVersionReply,
  type Frame,
  type PeerCapabilities,
  replyError,
  withDefaults,
  writeDmaReadReplyHeader,
  writeErrorReply,
  writeRegionReadReplyHeader,
  writeRegionWriteReply,
  chooseVersion,
  IoFdType,
} from '../../src/vfio-user/index.js';
import { Recorder } from './harness.js';
import { ctx, samples } from './samples.js';

/** Frames one encoded message (with `nfds` fake fds) and returns the frame. */
function frame(bytes: Uint8Array, nfds = 0): Frame {
  const rec = new Recorder();
  rec.push(bytes, Array.from({ length: nfds }, (_, i) => 100 + i));
  assert.equal(rec.frames.length, 1);
  return rec.frames[0]!;
}

function cmdOf(bytes: Uint8Array, receiver: 'server' | 'client' = 'server', nfds = 0) {
  return decodeCommand(frame(bytes, nfds), receiver, ctx);
}

describe('round trips', () => {
  it('decodes every sample without error (what each decodes to: the byte-exact round trips below)', () => {
    for (const s of samples()) {
      const f = frame(s.bytes, s.fds);
      if (s.kind === 'command') {
        assert.doesNotThrow(() => decodeCommand(f, s.receiver, ctx), s.name);
      } else if (replyError(f) === null) {
        assert.doesNotThrow(() => decodeReply(f, ctx), s.name);
      }
    }
  });

  it('VERSION: capabilities survive, bigints included, defaults fill the rest', () => {
    const caps: PeerCapabilities = {
      maxMsgFds: 16, maxDataXferSize: 65536, maxDmaMaps: 100, pgsizes: 0xfffffffffffff000n, writeMultiple: true,
      twinSocket: { supported: true }, migration: { pgsize: 8192, maxBitmapSize: 1024 },
    };
    const d = cmdOf(encodeVersionCommand(1, { major: 0, minor: 2, capabilities: caps }));
    assert.equal(d.cmd, Command.VERSION);
    if (d.cmd !== Command.VERSION) return;
    assert.deepEqual(d.msg, { major: 0, minor: 2, capabilities: caps });
    assert.deepEqual(withDefaults(undefined), {
      maxMsgFds: 1, maxDataXferSize: 1048576, maxDmaMaps: 65535, pgsizes: 4096n,
      twinSocket: false, writeMultiple: false, migration: undefined,
    });
    assert.equal(withDefaults({ migration: {} }).migration?.maxBitmapSize, 256 * 1024 * 1024);
    assert.deepEqual(chooseVersion(d.msg, { major: 0, minor: 1 }), { major: 0, minor: 1 });
    assert.throws(() => chooseVersion({ major: 1, minor: 0, capabilities: undefined }), { code: 'EINVAL' });
    const r = decodeReply(frame(encodeVersionReply(1, { major: 0, minor: 1, capabilities: { twinSocket: { supported: true, fdIndex: 0 } } }), 1));
    assert.equal(r.cmd, Command.VERSION);
  });

  it('DMA_MAP / DMA_UNMAP', () => {
    const d = cmdOf(samples().find((s) => s.name === 'dma-map-fd')!.bytes, 'server', 1);
    assert.deepEqual(d.msg, {
      argsz: 32, flags: 3, readable: true, writable: true, offset: 0n, address: 0x1_0000_0000n, size: 0x2000_0000n, fd: 100,
    });
    const u = cmdOf(samples().find((s) => s.name === 'dma-unmap-all')!.bytes);
    assert.deepEqual(u.msg, { argsz: 24, flags: 2, all: true, address: 0n, size: 0n });
    const ur = decodeReply(frame(samples().find((s) => s.name === 'r-dma-unmap')!.bytes));
    assert.deepEqual(ur.msg, { argsz: 24, flags: 0, all: false, address: 0xc0000n, size: 0x10000n });
  });

  it('SET_IRQS in every data form', () => {
    const byName = (n: string) => samples().find((s) => s.name === n)!;
    const e = cmdOf(byName('set-irqs-eventfd').bytes, 'server', 3);
    assert.deepEqual(e.msg, {
      argsz: 20, flags: IrqSetFlags.DATA_EVENTFD | IrqSetFlags.ACTION_TRIGGER, index: PciIrq.MSIX, start: 0, count: 3,
      action: 'trigger', data: 'eventfd', fds: [100, 101, 102],
    });
    const b = cmdOf(byName('set-irqs-bool').bytes);
    assert.deepEqual(b.msg, {
      argsz: 21, flags: IrqSetFlags.DATA_BOOL | IrqSetFlags.ACTION_UNMASK, index: PciIrq.INTX, start: 0, count: 1,
      action: 'unmask', data: 'bool', values: [true],
    });
    const n = cmdOf(byName('set-irqs-disable').bytes);
    assert.equal(n.cmd === Command.DEVICE_SET_IRQS && n.msg.data, 'none');
    const dea = cmdOf(byName('set-irqs-deassign').bytes);
    assert.deepEqual(dea.cmd === Command.DEVICE_SET_IRQS && dea.msg.data === 'eventfd' && dea.msg.fds, []);
  });

  it('region read/write and their replies, including the hot-path writers', () => {
    const buf = new Uint8Array(64);
    const at = writeRegionReadReplyHeader(buf, 9, 0x20, PciRegion.BAR0, 8);
    assert.equal(at, 32);
    buf.set([1, 2, 3, 4, 5, 6, 7, 8], at);
    const r = decodeReply(frame(buf.subarray(0, at + 8)));
    assert.deepEqual(r.msg, { offset: 0x20, region: 0, count: 8, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) });
    assert.deepEqual(buf.subarray(0, 40), encodeRegionReadReply(9, 0x20, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    const n = writeRegionWriteReply(buf, 10, 0x40, PciRegion.BAR2, 4);
    const w = decodeReply(frame(buf.subarray(0, n)));
    assert.deepEqual(w.msg, { offset: 0x40, region: 2, count: 4, data: new Uint8Array(0) });
    const e = writeErrorReply(buf, 11, Command.REGION_WRITE, 'EFAULT');
    assert.throws(() => decodeReply(frame(buf.subarray(0, e))), { code: 'EFAULT' });
    const wr = cmdOf(samples().find((s) => s.name === 'region-write')!.bytes);
    assert.equal(wr.cmd === Command.REGION_WRITE && wr.msg.count, 8);
    const multi = cmdOf(samples().find((s) => s.name === 'region-write-multi')!.bytes);
    assert.equal(multi.cmd === Command.REGION_WRITE_MULTI && multi.msg.length, 3);
    if (multi.cmd === Command.REGION_WRITE_MULTI) {
      assert.deepEqual(multi.msg.map((m) => [m.offset, m.region, m.count]), [[0, 0, 4], [8, 0, 8], [0x40, 7, 1]]);
    }
  });

  it('DMA_READ / DMA_WRITE in the spec layout and in QEMU\'s', () => {
    for (const layout of ['spec', 'qemu'] as const) {
      const c = { ...ctx, dmaLayout: layout };
      const data = new Uint8Array([9, 8, 7, 6, 5]);
      const w = decodeCommand(frame(encodeDmaWrite(1, 0x1000n, data, layout)), 'client', c);
      assert.deepEqual(w.msg, { address: 0x1000n, count: 5, data });
      const rq = decodeCommand(frame(encodeDmaRead(2, 0x2000n, 5, layout)), 'client', c);
      assert.deepEqual(rq.msg, { address: 0x2000n, count: 5, data: new Uint8Array(0) });
      const rr = decodeReply(frame(encodeDmaReadReply(2, 0x2000n, data, layout)), c);
      assert.deepEqual(rr.msg, { address: 0x2000n, count: 5, data });
      const buf = new Uint8Array(64).fill(0xee);
      const at = writeDmaReadReplyHeader(buf, 3, 0x3000n, 5, layout);
      buf.set(data, at);
      const rr2 = decodeReply(frame(buf.subarray(0, 32 + 5)), c);
      assert.deepEqual(rr2.msg, { address: 0x3000n, count: 5, data });
    }
    // QEMU answers DMA_WRITE with a bare header; the spec table has 12 bytes; libvfio-user 16.
    const empty = new Uint8Array(16);
    empty[2] = Command.DMA_WRITE;
    empty[4] = 16;
    empty[8] = 1;
    assert.equal(decodeReply(frame(empty)).msg, null);
  });

  it('region info reply with caps, and the short first pass', () => {
    const s = samples().find((x) => x.name === 'r-region-info-full')!;
    const full = decodeReply(frame(s.bytes, 1));
    assert.equal(full.cmd, Command.DEVICE_GET_REGION_INFO);
    if (full.cmd !== Command.DEVICE_GET_REGION_INFO) return;
    assert.deepEqual(full.msg.sparseMmap, [{ offset: 4096, size: 61440 }]);
    assert.deepEqual(full.msg.type, { type: 0x80000000, subtype: 3 });
    assert.equal(full.msg.fd, 100);
    const short = decodeReply(frame(samples().find((x) => x.name === 'r-region-info-short')!.bytes));
    if (short.cmd !== Command.DEVICE_GET_REGION_INFO) return;
    assert.equal(short.msg.argsz, 32 + 32 + 16);
    assert.equal(short.msg.flags & RegionFlags.CAPS, 0);
    assert.equal(short.msg.sparseMmap, undefined);
  });

  it('region io fds, features, migration data', () => {
    const io = decodeReply(frame(samples().find((x) => x.name === 'r-region-io-fds')!.bytes, 2));
    assert.equal(io.cmd, Command.DEVICE_GET_REGION_IO_FDS);
    if (io.cmd === Command.DEVICE_GET_REGION_IO_FDS) {
      assert.equal(io.msg.subRegions.length, 2);
      assert.equal(io.msg.subRegions[0]!.datamatch, 7n);
      assert.deepEqual(io.msg.fds, [100, 101]);
    }
    const short = encodeRegionIoFdsReply(1, {
      index: 0, subRegions: [{ offset: 0n, size: 4n, fdIndex: 0, type: IoFdType.IOEVENTFD, flags: 0, aux: 0, datamatch: 0n }],
    }, 16);
    assert.equal(short.entriesIncluded, false);
    const sr = decodeReply(frame(short.message));
    assert.equal(sr.cmd === Command.DEVICE_GET_REGION_IO_FDS && sr.msg.argsz, 56);

    const state = new Uint8Array(8);
    state[0] = MigState.STOP_COPY;
    const set = cmdOf(encodeDeviceFeature(1, { feature: Feature.MIG_DEVICE_STATE, get: false, set: true, probe: false, data: state }));
    assert.deepEqual(set.msg, { argsz: 16, flags: Feature.MIG_DEVICE_STATE | (1 << 17), feature: 2, get: false, set: true, probe: false, data: state });
    const rep = decodeReply(frame(encodeDeviceFeatureReply(1, { feature: Feature.MIGRATION, get: true, set: false, probe: false, data: state })));
    assert.equal(rep.cmd === Command.DEVICE_FEATURE && rep.msg.argsz, 16);
    const mig = decodeReply(frame(encodeMigDataReadReply(2, new Uint8Array([1, 2, 3]))));
    assert.deepEqual(mig.msg, { argsz: 11, size: 3, data: new Uint8Array([1, 2, 3]) });
  });
});

/** Encodes a decoded message again with the public encoders. */
function reencode(f: Frame, receiver: 'server' | 'client', isReply: boolean): Uint8Array {
  const id = f.msgId;
  if (isReply) {
    const d = decodeReply(f, ctx);
    switch (d.cmd) {
      case Command.VERSION: return encodeVersionReply(id, d.msg);
      case Command.DMA_MAP: case Command.DEVICE_SET_IRQS: case Command.DEVICE_RESET: case Command.MIG_DATA_WRITE:
        return encodeEmptyReply(id, d.cmd);
      case Command.DMA_UNMAP: return encodeDmaUnmapReply(id, d.msg!);
      case Command.DEVICE_GET_INFO: return encodeDeviceInfoReply(id, d.msg);
      case Command.DEVICE_GET_REGION_INFO: {
        const m = d.msg;
        const info = {
          index: m.index, flags: m.flags, size: m.size, mmap: { fd: m.fd ?? -1, offset: m.offset },
          ...(m.sparseMmap ? { sparseMmap: m.sparseMmap } : {}), ...(m.type ? { type: m.type } : {}),
        };
        // A short first pass: the full struct is implied by argsz; rebuild it to the same size.
        if ((m.flags & RegionFlags.CAPS) === 0 && m.argsz > 32) {
          const again = encodeRegionInfoReply(id, { ...info, sparseMmap: [{ offset: 4096, size: 61440 }], type: { type: 0x80000000, subtype: 3 } }, 32);
          return again.message;
        }
        return encodeRegionInfoReply(id, info, m.argsz).message;
      }
      case Command.DEVICE_GET_REGION_IO_FDS: return encodeRegionIoFdsReply(id, d.msg, d.msg.argsz).message;
      case Command.DEVICE_GET_IRQ_INFO: return encodeIrqInfoReply(id, d.msg);
      case Command.REGION_READ: return encodeRegionReadReply(id, d.msg.offset, d.msg.region, d.msg.data);
      case Command.REGION_WRITE: return encodeRegionWriteReply(id, d.msg.offset, d.msg.region, d.msg.count);
      case Command.DMA_READ: return encodeDmaReadReply(id, d.msg.address, d.msg.data);
      case Command.DMA_WRITE: return encodeDmaWriteReply(id, d.msg!.address, d.msg!.count);
      case Command.REGION_WRITE_MULTI: return encodeWriteMultiReply(id, d.msg);
      case Command.DEVICE_FEATURE: return encodeDeviceFeatureReply(id, d.msg);
      case Command.MIG_DATA_READ: return encodeMigDataReadReply(id, d.msg.data);
    }
  }
  const d = decodeCommand(f, receiver, ctx);
  const opts = { noReply: (f.flags & 0x10) !== 0 };
  switch (d.cmd) {
    case Command.VERSION: return encodeVersionCommand(id, d.msg);
    case Command.DMA_MAP: return encodeDmaMap(id, d.msg);
    case Command.DMA_UNMAP: return encodeDmaUnmap(id, d.msg);
    case Command.DEVICE_GET_INFO: return encodeDeviceInfoRequest(id, d.msg.argsz);
    case Command.DEVICE_GET_REGION_INFO: return encodeRegionInfoRequest(id, d.msg.index, d.msg.argsz);
    case Command.DEVICE_GET_REGION_IO_FDS: return encodeRegionIoFdsRequest(id, d.msg.index, d.msg.argsz);
    case Command.DEVICE_GET_IRQ_INFO: return encodeIrqInfoRequest(id, d.msg.index, d.msg.argsz);
    case Command.DEVICE_SET_IRQS: return encodeSetIrqs(id, d.msg);
    case Command.REGION_READ: return encodeRegionRead(id, d.msg.offset, d.msg.region, d.msg.count);
    case Command.REGION_WRITE: return encodeRegionWrite(id, d.msg.offset, d.msg.region, d.msg.data, opts);
    case Command.DMA_READ: return encodeDmaRead(id, d.msg.address, d.msg.count);
    case Command.DMA_WRITE: return encodeDmaWrite(id, d.msg.address, d.msg.data);
    case Command.DEVICE_RESET: return encodeDeviceReset(id);
    case Command.REGION_WRITE_MULTI: return encodeWriteMulti(id, d.msg, opts);
    case Command.DEVICE_FEATURE: return encodeDeviceFeature(id, d.msg);
    case Command.MIG_DATA_READ: return encodeMigDataRead(id, d.msg.size);
    case Command.MIG_DATA_WRITE: return encodeMigDataWrite(id, d.msg.data);
  }
}

describe('byte-exact round trips', () => {
  for (const s of samples()) {
    it(`${s.name}: decode then encode gives the same bytes`, () => {
      const f = frame(s.bytes, s.fds);
      if (replyError(f) !== null) {
        assert.deepEqual(encodeErrorReply(f.msgId, f.cmd, f.errorNo), s.bytes);
        return;
      }
      assert.deepEqual(reencode(f, s.receiver, s.kind === 'reply'), s.bytes);
    });
  }
});
