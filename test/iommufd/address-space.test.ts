import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DmaProt, VfioError } from '../../src/core/index.js';
import { IoAddressSpace, IommufdContext, MemoryBacking, type DmaBacking } from '../../src/iommufd/index.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}
const page = () => new MemoryBacking(new Uint8Array(4096));

test('map refuses any overlap with EEXIST and accepts adjacent ranges', () => {
  const as = new IoAddressSpace();
  as.map(0x2000, 0x2000, new MemoryBacking(new Uint8Array(0x2000)));
  for (const [iova, len] of [
    [0x2000, 0x2000],
    [0x1000, 0x2000],
    [0x3000, 0x2000],
    [0x2800, 0x100],
    [0x1000, 0x4000],
  ] as const) {
    assert.throws(() => as.map(iova, len, new MemoryBacking(new Uint8Array(len))), isCode('EEXIST'), `${iova}+${len}`);
  }
  as.map(0x1000, 0x1000, page());
  as.map(0x4000, 0x1000, page());
  assert.deepEqual(
    as.list().map((m) => m.iova),
    [0x1000, 0x2000, 0x4000],
  );
});

test('map validates its arguments', () => {
  const as = new IoAddressSpace({ maxMappings: 2 });
  assert.throws(() => as.map(-1, 4096, page()), isCode('EINVAL'));
  assert.throws(() => as.map(0, 0, page()), isCode('EINVAL'));
  assert.throws(() => as.map(0.5, 4096, page()), isCode('EINVAL'));
  assert.throws(() => as.map(2 ** 53 - 4096, 8192, page()), isCode('EOVERFLOW'));
  assert.throws(() => as.map(0, 8192, page()), isCode('EINVAL'), 'longer than the backing');
  assert.throws(() => as.map(0, 4096, page(), { offset: 1 }), isCode('EINVAL'));
  assert.throws(() => as.map(0, 4096, page(), { prot: 4 }), isCode('EINVAL'));
  const noAccess: DmaBacking = { size: 4096, reach: 'messages', release() {} };
  assert.throws(() => as.map(0, 4096, noAccess), isCode('EINVAL'));
  const noView: DmaBacking = { size: 4096, reach: 'memory', readSync() {}, writeSync() {}, release() {} };
  assert.throws(() => as.map(0, 4096, noView), isCode('EINVAL'), 'memory without views');
  const noCopies: DmaBacking = { size: 4096, reach: 'file', release() {} };
  assert.throws(() => as.map(0, 4096, noCopies), isCode('EINVAL'), 'a file without copies');
  as.map(0, 4096, page());
  as.map(4096, 4096, page());
  assert.throws(() => as.map(8192, 4096, page()), isCode('ENOSPC'));
});

test('unmap: ENOENT for nothing, EINVAL for a split, removes whole mappings and releases each backing once', () => {
  const as = new IoAddressSpace();
  const released: number[] = [];
  for (const iova of [0x1000, 0x2000, 0x5000]) {
    as.map(iova, 0x1000, new MemoryBacking(new Uint8Array(0x1000), () => released.push(iova)));
  }
  assert.throws(() => as.unmap(0x3000, 0x2000), isCode('ENOENT'));
  assert.throws(() => as.unmap(0x1800, 0x1000), isCode('EINVAL'), 'starts inside');
  assert.throws(() => as.unmap(0x1000, 0x1800), isCode('EINVAL'), 'ends inside');
  assert.equal(as.size, 3, 'a refused unmap removes nothing');
  assert.equal(as.unmap(0x0, 0x4000), 0x2000);
  assert.deepEqual(released, [0x1000, 0x2000]);
  assert.equal(as.unmapAll(), 0x1000);
  assert.deepEqual(released, [0x1000, 0x2000, 0x5000]);
  assert.equal(as.unmapAll(), 0);
});

test('reads and writes span adjacent mappings; a gap is EFAULT and changes nothing', async () => {
  const as = new IoAddressSpace();
  const a = new Uint8Array(0x1000);
  const b = new Uint8Array(0x2000);
  as.map(0x1000, 0x1000, new MemoryBacking(a));
  as.map(0x2000, 0x1000, new MemoryBacking(b), { offset: 0x1000 });
  const src = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  as.writeSync(0x1ff8, src);
  assert.deepEqual([...a.subarray(0xff8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...b.subarray(0x1000, 0x1008)], [9, 10, 11, 12, 13, 14, 15, 16]);
  const back = new Uint8Array(16);
  await as.read(0x1ff8, back);
  assert.deepEqual(back, src);
  // 0x3000.. is unmapped: an access crossing into it fails as a whole.
  const before = b.slice();
  assert.throws(() => as.writeSync(0x2ff0, new Uint8Array(32).fill(0xee)), isCode('EFAULT'));
  assert.deepEqual(b, before);
  await assert.rejects(as.read(0x0, new Uint8Array(1)), isCode('EFAULT'));
  assert.throws(() => as.readSync(0x3000, new Uint8Array(1)), isCode('EFAULT'));
  as.readSync(0x1000, new Uint8Array(0)); // empty access is fine
});

test('permissions are checked per mapping (EPERM)', () => {
  const as = new IoAddressSpace();
  as.map(0, 4096, page(), { prot: DmaProt.READ });
  as.map(4096, 4096, page(), { prot: DmaProt.WRITE });
  as.readSync(0, new Uint8Array(8));
  assert.throws(() => as.writeSync(0, new Uint8Array(8)), isCode('EPERM'));
  as.writeSync(4096, new Uint8Array(8));
  assert.throws(() => as.readSync(4096, new Uint8Array(8)), isCode('EPERM'));
  assert.throws(() => as.readSync(4090, new Uint8Array(8)), isCode('EPERM'), 'spanning into a write-only mapping');
  assert.throws(() => as.view(0, 8, DmaProt.WRITE), isCode('EPERM'));
});

test('message-backed mappings go through read/write; sync access and views are EAGAIN', async () => {
  const remote = new Uint8Array(8192);
  const log: string[] = [];
  const backing: DmaBacking = {
    size: remote.length,
    reach: 'messages',
    async read(off, dest) {
      log.push(`read ${off}+${dest.length}`);
      dest.set(remote.subarray(off, off + dest.length));
    },
    async write(off, src) {
      log.push(`write ${off}+${src.length}`);
      remote.set(src, off);
    },
    release() {
      log.push('release');
    },
  };
  const as = new IoAddressSpace();
  const local = new Uint8Array(4096);
  as.map(0x10000, 4096, new MemoryBacking(local));
  as.map(0x11000, 4096, backing, { offset: 4096 });
  await as.write(0x10ffe, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual([...local.subarray(4094)], [1, 2]);
  assert.deepEqual([...remote.subarray(4096, 4098)], [3, 4]);
  const out = new Uint8Array(4);
  await as.read(0x10ffe, out);
  assert.deepEqual([...out], [1, 2, 3, 4]);
  assert.throws(() => as.readSync(0x11000, new Uint8Array(1)), isCode('EAGAIN'));
  assert.throws(() => as.view(0x11000, 1, DmaProt.READ), isCode('EAGAIN'));
  as.unmapAll();
  assert.deepEqual(log, ['write 4096+2', 'read 4096+2', 'release']);
});

test('views are zero-copy inside one mapping, EFAULT across mappings', () => {
  const as = new IoAddressSpace();
  const mem = new Uint8Array(8192);
  as.map(0, 4096, new MemoryBacking(mem.subarray(0, 4096)));
  as.map(4096, 4096, new MemoryBacking(mem.subarray(4096)));
  const v = as.view(16, 16, DmaProt.READ | DmaProt.WRITE);
  v[0] = 42;
  assert.equal(mem[16], 42);
  assert.throws(() => as.view(4090, 16, DmaProt.READ), isCode('EFAULT'));
  assert.throws(() => as.view(9000, 1, DmaProt.READ), isCode('EFAULT'));
});

test('accesses are told about unmaps before release, and detach cleanly', () => {
  const as = new IoAddressSpace();
  const log: string[] = [];
  const access = as.attachAccess({ dmaUnmap: (iova, len) => log.push(`a ${iova}+${len}`) });
  as.attachAccess({
    dmaUnmap: () => {
      throw new Error('driver bug');
    },
  });
  as.map(0, 4096, new MemoryBacking(new Uint8Array(4096), () => log.push('release')));
  const onWarn = () => {};
  process.on('warning', onWarn);
  as.unmap(0, 4096);
  process.off('warning', onWarn);
  assert.deepEqual(log, ['a 0+4096', 'release'], 'a throwing listener does not stop the unmap');
  access.detach();
  access.detach();
  assert.throws(() => access.readSync(0, new Uint8Array(1)), isCode('ENODEV'));
});

test('destroying a context unmaps everything; its address space is then unusable', () => {
  const ctx = new IommufdContext();
  let released = 0;
  ctx.ioas.map(0, 4096, new MemoryBacking(new Uint8Array(4096), () => released++));
  const access = ctx.ioas.attachAccess({ dmaUnmap() {} });
  ctx.destroy();
  ctx.destroy();
  assert.equal(released, 1);
  assert.equal(ctx.alive, false);
  assert.equal(access.attached, false);
  assert.throws(() => ctx.ioas.map(0, 4096, page()), isCode('ENODEV'));
});

test('lookups stay exact with many mappings', () => {
  const as = new IoAddressSpace();
  const mems: Uint8Array[] = [];
  for (let i = 0; i < 500; i++) {
    const m = new Uint8Array(256);
    mems.push(m);
    as.map(i * 512, 256, new MemoryBacking(m)); // holes between mappings
  }
  for (let i = 0; i < 500; i++) {
    as.writeSync(i * 512 + 255, Uint8Array.of(i & 0xff));
    assert.equal(mems[i]![255], i & 0xff);
    assert.throws(() => as.readSync(i * 512 + 256, new Uint8Array(1)), isCode('EFAULT'));
  }
});
