import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RegionInfo } from '../../src/base/uapi.js';
import { RegionCap, RegionFlags } from '../../src/base/uapi.js';
import { decodeRegionInfoReply, regionInfoReplyBody, regionInfoSize } from '../../src/vfio-user/index.js';

const RW = RegionFlags.READ | RegionFlags.WRITE;

function put32(b: Uint8Array, o: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(o, v, true);
}

describe('region info', () => {
  it('walks a chain of sparse mmap and type caps, in either order of need', () => {
    const info: RegionInfo = {
      index: 0,
      flags: RW | RegionFlags.MMAP,
      size: 1 << 20,
      sparseMmap: [
        { offset: 0, size: 4096 },
        { offset: 65536, size: 8192 },
      ],
      type: { type: 7, subtype: 9 },
      mmap: { fd: 5, offset: 0x1000 },
    };
    assert.equal(regionInfoSize(info), 32 + 16 + 32 + 16);
    const { body, sendFd } = regionInfoReplyBody(info, 4096);
    assert.equal(sendFd, true);
    assert.equal(body.length, 96);
    const d = decodeRegionInfoReply(body, [11]);
    assert.equal(d.flags, RW | RegionFlags.MMAP | RegionFlags.CAPS);
    assert.equal(d.capOffset, 32);
    assert.equal(d.offset, 0x1000);
    assert.deepEqual(d.sparseMmap, info.sparseMmap);
    assert.deepEqual(d.type, info.type);
    assert.equal(d.fd, 11);
  });

  it('two passes: too small an argsz gets the bare struct, no CAPS flag, no fd, the needed argsz', () => {
    const info: RegionInfo = {
      index: 1,
      flags: RW | RegionFlags.MMAP,
      size: 8192,
      sparseMmap: [{ offset: 0, size: 4096 }],
      mmap: { fd: 5, offset: 0 },
    };
    const first = regionInfoReplyBody(info, 32);
    assert.equal(first.body.length, 32);
    assert.equal(first.sendFd, false);
    const d = decodeRegionInfoReply(first.body, []);
    assert.equal(d.argsz, 64);
    assert.equal(d.flags & RegionFlags.CAPS, 0);
    assert.equal(d.capOffset, 0);
    const second = regionInfoReplyBody(info, d.argsz);
    assert.equal(second.sendFd, true);
    assert.deepEqual(decodeRegionInfoReply(second.body, [3]).sparseMmap, [{ offset: 0, size: 4096 }]);
  });

  it('sends the fd for a wholly mappable region without caps; never for an unmappable one', () => {
    assert.equal(regionInfoReplyBody({ index: 0, flags: RW | RegionFlags.MMAP, size: 4096, mmap: { fd: 1, offset: 0 } }, 32).sendFd, true);
    assert.equal(regionInfoReplyBody({ index: 0, flags: RW, size: 4096 }, 32).sendFd, false);
  });

  it('keeps capabilities it does not know as raw bytes', () => {
    const b = new Uint8Array(32 + 12);
    put32(b, 0, 44);
    put32(b, 4, RegionFlags.CAPS);
    put32(b, 12, 32);
    b[32] = 42; // id
    b[34] = 1; // version
    b.set([1, 2, 3, 4], 40);
    const d = decodeRegionInfoReply(b, []);
    assert.deepEqual(d.otherCaps, [{ id: 42, version: 1, data: new Uint8Array([1, 2, 3, 4]) }]);
  });

  const badChains: [string, (b: Uint8Array) => void][] = [
    ['cap_offset inside the struct', (b) => put32(b, 12, 8)],
    ['cap_offset past argsz', (b) => put32(b, 12, 200)],
    ['next pointing backwards (a loop)', (b) => put32(b, 36, 32)],
    ['next past the end', (b) => put32(b, 36, 60)],
    ['more sparse areas than fit', (b) => put32(b, 40, 3)],
    [
      'a type cap cut short',
      (b) => {
        put32(b, 0, 70);
        put32(b, 36, 64);
        b[64] = RegionCap.TYPE;
      },
    ],
  ];
  for (const [name, spoil] of badChains) {
    it(`refuses a chain with ${name} (EINVAL)`, () => {
      const info: RegionInfo = { index: 0, flags: RW, size: 8192, sparseMmap: [{ offset: 0, size: 4096 }] };
      const body = new Uint8Array(72);
      body.set(regionInfoReplyBody(info, 64).body);
      put32(body, 0, 64);
      spoil(body);
      assert.throws(() => decodeRegionInfoReply(body, []), { code: 'EINVAL' });
    });
  }

  it('refuses sizes beyond 2^53 (EOVERFLOW) and more than one fd (EINVAL)', () => {
    const { body } = regionInfoReplyBody({ index: 0, flags: RW, size: 4096 }, 32);
    assert.throws(() => decodeRegionInfoReply(body, [1, 2]), { code: 'EINVAL' });
    body.fill(0xff, 16, 24);
    assert.throws(() => decodeRegionInfoReply(body, []), { code: 'EOVERFLOW' });
  });
});
