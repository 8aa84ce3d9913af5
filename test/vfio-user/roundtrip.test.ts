import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Feature, IrqSetFlags, MigState, PciIrq, PciRegion, RegionFlags } from '../../src/base/uapi.js';
import {
  Command,
  decodeDeviceFeature,
  decodeDeviceFeatureReply,
  decodeDeviceInfoReply,
  decodeDeviceInfoRequest,
  decodeDeviceReset,
  decodeDmaMap,
  decodeDmaRead,
  decodeDmaReadReply,
  decodeDmaUnmap,
  decodeDmaUnmapReply,
  decodeDmaWrite,
  decodeDmaWriteReply,
  decodeEmptyReply,
  decodeIrqInfoReply,
  decodeIrqInfoRequest,
  decodeMigDataRead,
  decodeMigDataReadReply,
  decodeMigDataWrite,
  decodeRegionAccess,
  decodeRegionInfoReply,
  decodeRegionInfoRequest,
  decodeRegionIoFdsReply,
  decodeRegionIoFdsRequest,
  decodeRegionReadReply,
  decodeRegionWriteReply,
  decodeSetIrqs,
  decodeVersionCommand,
  decodeVersionReply,
  decodeWriteMulti,
  decodeWriteMultiReply,
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
  wantsNoReply,
} from '../../src/vfio-user/index.js';
import { Recorder } from './harness.js';
import { ctx, samples } from './samples.js';

/** Frames one encoded message (with `nfds` fake fds) and returns the frame. */
function frame(bytes: Uint8Array, nfds = 0): Frame {
  const rec = new Recorder();
  rec.push(
    bytes,
    Array.from({ length: nfds }, (_, i) => 100 + i),
  );
  assert.equal(rec.frames.length, 1);
  return rec.frames[0]!;
}

/** The sample named `name`, framed. */
function sample(name: string): Frame {
  const s = samples().find((x) => x.name === name)!;
  return frame(s.bytes, s.fds);
}

describe('round trips', () => {
  it('VERSION: capabilities survive, bigints included, defaults fill the rest', () => {
    const caps: PeerCapabilities = {
      maxMsgFds: 16,
      maxDataXferSize: 65536,
      maxDmaMaps: 100,
      pgsizes: 0xfffffffffffff000n,
      writeMultiple: true,
      twinSocket: { supported: true },
      migration: { pgsize: 8192, maxBitmapSize: 1024 },
    };
    const f = frame(encodeVersionCommand(1, { major: 0, minor: 2, capabilities: caps }));
    assert.equal(f.cmd, Command.VERSION);
    const d = decodeVersionCommand(f.body, f.fds);
    assert.deepEqual(d, { major: 0, minor: 2, capabilities: caps });
    assert.deepEqual(withDefaults(undefined), {
      maxMsgFds: 1,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096n,
      twinSocket: false,
      writeMultiple: false,
      migration: undefined,
    });
    assert.equal(withDefaults({ migration: {} }).migration?.maxBitmapSize, 256 * 1024 * 1024);
    assert.deepEqual(chooseVersion(d, { major: 0, minor: 1 }), { major: 0, minor: 1 });
    assert.throws(() => chooseVersion({ major: 1, minor: 0, capabilities: undefined }), { code: 'EINVAL' });
    const r = frame(encodeVersionReply(1, { major: 0, minor: 1, capabilities: { twinSocket: { supported: true, fdIndex: 0 } } }), 1);
    assert.deepEqual(decodeVersionReply(r.body, r.fds).capabilities?.twinSocket, { supported: true, fdIndex: 0 });
  });

  it('DMA_MAP / DMA_UNMAP', () => {
    const m = sample('dma-map-fd');
    assert.deepEqual(decodeDmaMap(m.body, m.fds), {
      argsz: 32,
      flags: 3,
      readable: true,
      writable: true,
      offset: 0n,
      address: 0x1_0000_0000n,
      size: 0x2000_0000n,
      fd: 100,
    });
    const u = sample('dma-unmap-all');
    assert.deepEqual(decodeDmaUnmap(u.body, u.fds, ctx), { argsz: 24, flags: 2, all: true, address: 0n, size: 0n });
    const ur = sample('r-dma-unmap');
    assert.deepEqual(decodeDmaUnmapReply(ur.body, ur.fds), { argsz: 24, flags: 0, all: false, address: 0xc0000n, size: 0x10000n });
  });

  it('SET_IRQS in every data form', () => {
    const irqs = (name: string) => {
      const f = sample(name);
      return decodeSetIrqs(f.body, f.fds, ctx);
    };
    assert.deepEqual(irqs('set-irqs-eventfd'), {
      argsz: 20,
      flags: IrqSetFlags.DATA_EVENTFD | IrqSetFlags.ACTION_TRIGGER,
      index: PciIrq.MSIX,
      start: 0,
      count: 3,
      action: 'trigger',
      data: 'eventfd',
      fds: [100, 101, 102],
    });
    assert.deepEqual(irqs('set-irqs-bool'), {
      argsz: 21,
      flags: IrqSetFlags.DATA_BOOL | IrqSetFlags.ACTION_UNMASK,
      index: PciIrq.INTX,
      start: 0,
      count: 1,
      action: 'unmask',
      data: 'bool',
      values: [true],
    });
    assert.equal(irqs('set-irqs-disable').data, 'none');
    const dea = irqs('set-irqs-deassign');
    assert.deepEqual(dea.data === 'eventfd' && dea.fds, []);
  });

  it('region read/write and their replies, including the hot-path writers', () => {
    const buf = new Uint8Array(64);
    const at = writeRegionReadReplyHeader(buf, 9, 0x20, PciRegion.BAR0, 8);
    assert.equal(at, 32);
    buf.set([1, 2, 3, 4, 5, 6, 7, 8], at);
    const r = frame(buf.subarray(0, at + 8));
    assert.deepEqual(decodeRegionReadReply(r.body, r.fds), { offset: 0x20, region: 0, count: 8, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) });
    assert.deepEqual(buf.subarray(0, 40), encodeRegionReadReply(9, 0x20, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    const n = writeRegionWriteReply(buf, 10, 0x40, PciRegion.BAR2, 4);
    const w = frame(buf.subarray(0, n));
    assert.deepEqual(decodeRegionWriteReply(w.body, w.fds), { offset: 0x40, region: 2, count: 4, data: new Uint8Array(0) });
    const e = writeErrorReply(buf, 11, Command.REGION_WRITE, 'EFAULT');
    assert.equal(replyError(frame(buf.subarray(0, e)))?.code, 'EFAULT');
    const wr = sample('region-write');
    assert.equal(decodeRegionAccess(Command.REGION_WRITE, wr.body, wr.fds, ctx).count, 8);
    const multi = sample('region-write-multi');
    const entries = decodeWriteMulti(multi.body, multi.fds, ctx);
    assert.deepEqual(
      entries.map((m) => [m.offset, m.region, m.count]),
      [
        [0, 0, 4],
        [8, 0, 8],
        [0x40, 7, 1],
      ],
    );
  });

  it("DMA_READ / DMA_WRITE in the spec layout and in QEMU's", () => {
    for (const layout of ['spec', 'qemu'] as const) {
      const c = { ...ctx, dmaLayout: layout };
      const data = new Uint8Array([9, 8, 7, 6, 5]);
      const w = frame(encodeDmaWrite(1, 0x1000n, data, layout));
      assert.deepEqual(decodeDmaWrite(w.body, w.fds, c), { address: 0x1000n, count: 5, data });
      const rq = frame(encodeDmaRead(2, 0x2000n, 5, layout));
      assert.deepEqual(decodeDmaRead(rq.body, rq.fds, c), { address: 0x2000n, count: 5, data: new Uint8Array(0) });
      const rr = frame(encodeDmaReadReply(2, 0x2000n, data, layout));
      assert.deepEqual(decodeDmaReadReply(rr.body, rr.fds, c), { address: 0x2000n, count: 5, data });
      const buf = new Uint8Array(64).fill(0xee);
      const at = writeDmaReadReplyHeader(buf, 3, 0x3000n, 5, layout);
      buf.set(data, at);
      const rr2 = frame(buf.subarray(0, 32 + 5));
      assert.deepEqual(decodeDmaReadReply(rr2.body, rr2.fds, c), { address: 0x3000n, count: 5, data });
    }
    // QEMU answers DMA_WRITE with a bare header; the spec table has 12 bytes; libvfio-user 16.
    const empty = new Uint8Array(16);
    empty[2] = Command.DMA_WRITE;
    empty[4] = 16;
    empty[8] = 1;
    assert.equal(decodeDmaWriteReply(frame(empty).body, []), null);
  });

  it('region info reply with caps, and the short first pass', () => {
    const f = sample('r-region-info-full');
    const full = decodeRegionInfoReply(f.body, f.fds);
    assert.deepEqual(full.sparseMmap, [{ offset: 4096, size: 61440 }]);
    assert.deepEqual(full.type, { type: 0x80000000, subtype: 3 });
    assert.equal(full.fd, 100);
    const s = sample('r-region-info-short');
    const short = decodeRegionInfoReply(s.body, s.fds);
    assert.equal(short.argsz, 32 + 32 + 16);
    assert.equal(short.flags & RegionFlags.CAPS, 0);
    assert.equal(short.sparseMmap, undefined);
  });

  it('region io fds, features, migration data', () => {
    const f = sample('r-region-io-fds');
    const io = decodeRegionIoFdsReply(f.body, f.fds);
    assert.equal(io.subRegions.length, 2);
    assert.equal(io.subRegions[0]!.datamatch, 7n);
    assert.deepEqual(io.fds, [100, 101]);
    const short = encodeRegionIoFdsReply(
      1,
      {
        index: 0,
        subRegions: [{ offset: 0n, size: 4n, fdIndex: 0, type: IoFdType.IOEVENTFD, flags: 0, aux: 0, datamatch: 0n }],
      },
      16,
    );
    assert.equal(short.entriesIncluded, false);
    const sr = frame(short.message);
    assert.equal(decodeRegionIoFdsReply(sr.body, sr.fds).argsz, 56);

    const state = new Uint8Array(8);
    state[0] = MigState.STOP_COPY;
    const set = frame(encodeDeviceFeature(1, { feature: Feature.MIG_DEVICE_STATE, get: false, set: true, probe: false, data: state }));
    assert.deepEqual(decodeDeviceFeature(set.body, set.fds), {
      argsz: 16,
      flags: Feature.MIG_DEVICE_STATE | (1 << 17),
      feature: 2,
      get: false,
      set: true,
      probe: false,
      data: state,
    });
    const rep = frame(encodeDeviceFeatureReply(1, { feature: Feature.MIGRATION, get: true, set: false, probe: false, data: state }));
    assert.equal(decodeDeviceFeatureReply(rep.body, rep.fds).argsz, 16);
    const mig = frame(encodeMigDataReadReply(2, new Uint8Array([1, 2, 3])));
    assert.deepEqual(decodeMigDataReadReply(mig.body, mig.fds), { argsz: 11, size: 3, data: new Uint8Array([1, 2, 3]) });
  });
});

/**
 * Decodes a sample with the decoder its receiver uses (the handler's, or
 * the client library's) and encodes it again with the public encoder.
 */
function reencode(f: Frame, isReply: boolean): Uint8Array {
  const { msgId: id, body, fds } = f;
  if (isReply) {
    switch (f.cmd) {
      case Command.VERSION:
        return encodeVersionReply(id, decodeVersionReply(body, fds));
      case Command.DMA_MAP:
      case Command.DEVICE_SET_IRQS:
      case Command.DEVICE_RESET:
      case Command.MIG_DATA_WRITE:
        decodeEmptyReply(f.cmd, body, fds);
        return encodeEmptyReply(id, f.cmd);
      case Command.DMA_UNMAP:
        return encodeDmaUnmapReply(id, decodeDmaUnmapReply(body, fds)!);
      case Command.DEVICE_GET_INFO:
        return encodeDeviceInfoReply(id, decodeDeviceInfoReply(body, fds));
      case Command.DEVICE_GET_REGION_INFO: {
        const m = decodeRegionInfoReply(body, fds);
        const info = {
          index: m.index,
          flags: m.flags,
          size: m.size,
          mmap: { fd: m.fd ?? -1, offset: m.offset },
          ...(m.sparseMmap ? { sparseMmap: m.sparseMmap } : {}),
          ...(m.type ? { type: m.type } : {}),
        };
        // A short first pass: the full struct is implied by argsz; rebuild it to the same size.
        if ((m.flags & RegionFlags.CAPS) === 0 && m.argsz > 32) {
          const again = encodeRegionInfoReply(
            id,
            { ...info, sparseMmap: [{ offset: 4096, size: 61440 }], type: { type: 0x80000000, subtype: 3 } },
            32,
          );
          return again.message;
        }
        return encodeRegionInfoReply(id, info, m.argsz).message;
      }
      case Command.DEVICE_GET_REGION_IO_FDS: {
        const m = decodeRegionIoFdsReply(body, fds);
        return encodeRegionIoFdsReply(id, m, m.argsz).message;
      }
      case Command.DEVICE_GET_IRQ_INFO:
        return encodeIrqInfoReply(id, decodeIrqInfoReply(body, fds));
      case Command.REGION_READ: {
        const m = decodeRegionReadReply(body, fds, ctx);
        return encodeRegionReadReply(id, m.offset, m.region, m.data);
      }
      case Command.REGION_WRITE: {
        const m = decodeRegionWriteReply(body, fds);
        return encodeRegionWriteReply(id, m.offset, m.region, m.count);
      }
      case Command.DMA_READ: {
        const m = decodeDmaReadReply(body, fds, ctx);
        return encodeDmaReadReply(id, m.address, m.data);
      }
      case Command.DMA_WRITE: {
        const m = decodeDmaWriteReply(body, fds)!;
        return encodeDmaWriteReply(id, m.address, m.count);
      }
      case Command.REGION_WRITE_MULTI:
        return encodeWriteMultiReply(id, decodeWriteMultiReply(body, fds));
      case Command.DEVICE_FEATURE:
        return encodeDeviceFeatureReply(id, decodeDeviceFeatureReply(body, fds));
      case Command.MIG_DATA_READ:
        return encodeMigDataReadReply(id, decodeMigDataReadReply(body, fds, ctx).data);
    }
    throw new Error(`no reply decoder for command ${f.cmd}`);
  }
  const opts = { noReply: wantsNoReply(f.flags) };
  switch (f.cmd) {
    case Command.VERSION:
      return encodeVersionCommand(id, decodeVersionCommand(body, fds));
    case Command.DMA_MAP:
      return encodeDmaMap(id, decodeDmaMap(body, fds));
    case Command.DMA_UNMAP:
      return encodeDmaUnmap(id, decodeDmaUnmap(body, fds, ctx));
    case Command.DEVICE_GET_INFO:
      return encodeDeviceInfoRequest(id, decodeDeviceInfoRequest(body, fds).argsz);
    case Command.DEVICE_GET_REGION_INFO: {
      const m = decodeRegionInfoRequest(body, fds, ctx);
      return encodeRegionInfoRequest(id, m.index, m.argsz);
    }
    case Command.DEVICE_GET_REGION_IO_FDS: {
      const m = decodeRegionIoFdsRequest(body, fds, ctx);
      return encodeRegionIoFdsRequest(id, m.index, m.argsz);
    }
    case Command.DEVICE_GET_IRQ_INFO: {
      const m = decodeIrqInfoRequest(body, fds, ctx);
      return encodeIrqInfoRequest(id, m.index, m.argsz);
    }
    case Command.DEVICE_SET_IRQS:
      return encodeSetIrqs(id, decodeSetIrqs(body, fds, ctx));
    case Command.REGION_READ: {
      const m = decodeRegionAccess(f.cmd, body, fds, ctx);
      return encodeRegionRead(id, m.offset, m.region, m.count);
    }
    case Command.REGION_WRITE: {
      const m = decodeRegionAccess(f.cmd, body, fds, ctx);
      return encodeRegionWrite(id, m.offset, m.region, m.data, opts);
    }
    case Command.DMA_READ: {
      const m = decodeDmaRead(body, fds, ctx);
      return encodeDmaRead(id, m.address, m.count);
    }
    case Command.DMA_WRITE: {
      const m = decodeDmaWrite(body, fds, ctx);
      return encodeDmaWrite(id, m.address, m.data);
    }
    case Command.DEVICE_RESET:
      decodeDeviceReset(body, fds);
      return encodeDeviceReset(id);
    case Command.REGION_WRITE_MULTI:
      return encodeWriteMulti(id, decodeWriteMulti(body, fds, ctx), opts);
    case Command.DEVICE_FEATURE:
      return encodeDeviceFeature(id, decodeDeviceFeature(body, fds));
    case Command.MIG_DATA_READ:
      return encodeMigDataRead(id, decodeMigDataRead(body, fds, ctx).size);
    case Command.MIG_DATA_WRITE:
      return encodeMigDataWrite(id, decodeMigDataWrite(body, fds, ctx).data);
  }
  throw new Error(`no command decoder for command ${f.cmd}`);
}

describe('byte-exact round trips', () => {
  for (const s of samples()) {
    it(`${s.name}: decode then encode gives the same bytes`, () => {
      const f = frame(s.bytes, s.fds);
      if (replyError(f) !== null) {
        assert.deepEqual(encodeErrorReply(f.msgId, f.cmd, f.errorNo), s.bytes);
        return;
      }
      assert.deepEqual(reencode(f, s.kind === 'reply'), s.bytes);
    });
  }
});
