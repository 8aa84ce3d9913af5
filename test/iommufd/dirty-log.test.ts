/**
 * DMA dirty-page logging in the address-space layer: writes through a DMA
 * access are logged with no help from the driver, writable views count as
 * dirty until unmapped, reports read and clear, and the limits hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import { DmaProt } from '../../src/base/uapi.js';
import { DirtyLog, IoAddressSpace, MAX_LOG_RANGES, MemoryBacking } from '../../src/iommufd/index.js';

const PAGE = 4096;
const code = (c: string) => (e: unknown) => isVfioError(e, c as never);

/** The set bits of a bitmap, as page numbers. */
function bits(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >>> 3]! & (1 << (i & 7))) out.push(i);
  return out;
}

function space(size = 64 * PAGE) {
  const ioas = new IoAddressSpace();
  ioas.map(0x100000, size, new MemoryBacking(new Uint8Array(size)));
  const unmapped: string[] = [];
  const access = ioas.attachAccess({ dmaUnmap: (iova, length) => unmapped.push(`${iova}+${length}`) });
  return { ioas, access };
}

describe('DMA dirty-page logging', () => {
  it('logs the pages a device writes through its access, async or sync; a report reads and clears them', async () => {
    const { access } = space();
    assert.equal(access.dirty.start(PAGE, []), PAGE);
    await access.write(0x100000 + PAGE + 10, new Uint8Array(PAGE)); // pages 1 and 2
    access.writeSync(0x100000 + 7 * PAGE, Uint8Array.of(1)); // page 7
    const report = access.dirty.report(0x100000, 16 * PAGE, PAGE, 1024);
    assert.equal(report.length, 8, 'whole u64 words');
    assert.deepEqual(bits(report), [1, 2, 7]);
    assert.deepEqual(bits(access.dirty.report(0x100000, 16 * PAGE, PAGE, 1024)), [], 'cleared');
  });

  it('reads are not writes; nothing is logged before start or after stop', async () => {
    const { access } = space();
    await access.write(0x100000, Uint8Array.of(1));
    access.dirty.start(PAGE, []);
    await access.read(0x100000 + PAGE, new Uint8Array(4));
    assert.deepEqual(bits(access.dirty.report(0x100000, 8 * PAGE, PAGE, 64)), []);
    access.dirty.stop();
    assert.throws(() => access.dirty.report(0x100000, 8 * PAGE, PAGE, 64), code('EINVAL'));
  });

  it('logs only inside the ranges given', () => {
    const { access } = space();
    access.dirty.start(PAGE, [{ iova: 0x100000 + 4 * PAGE, length: 2 * PAGE }]);
    access.writeSync(0x100000, new Uint8Array(8 * PAGE));
    assert.deepEqual(bits(access.dirty.report(0x100000, 8 * PAGE, PAGE, 64)), [4, 5]);
  });

  it('reports in another page size: larger pages combine, smaller ones repeat', () => {
    const { access } = space();
    assert.equal(access.dirty.start(2 * PAGE, []), 2 * PAGE);
    access.writeSync(0x100000 + 5 * PAGE, Uint8Array.of(1)); // logged as 8 KiB page 2: [4, 6)
    assert.deepEqual(bits(access.dirty.report(0x100000, 8 * PAGE, PAGE, 64)), [4, 5]);
    access.writeSync(0x100000 + 5 * PAGE, Uint8Array.of(1));
    assert.deepEqual(bits(access.dirty.report(0x100000, 8 * PAGE, 4 * PAGE, 64)), [1]);
  });

  it('a page size below 4 KiB logs 4 KiB pages; a report range starting mid-page sees its bits from there', () => {
    const { access } = space();
    assert.equal(access.dirty.start(512, []), PAGE);
    access.writeSync(0x100000 + 3 * PAGE, Uint8Array.of(1));
    assert.deepEqual(bits(access.dirty.report(0x100000 + 2 * PAGE, 4 * PAGE, PAGE, 64)), [1]);
  });

  it('a writable view is dirty in every report until its range is unmapped; a read-only one never', () => {
    const { ioas, access } = space();
    access.view(0x100000 + 2 * PAGE, PAGE, DmaProt.WRITE); // taken before logging
    access.view(0x100000 + 9 * PAGE, PAGE, DmaProt.READ);
    access.dirty.start(PAGE, []);
    assert.deepEqual(bits(access.dirty.report(0x100000, 16 * PAGE, PAGE, 64)), [2]);
    assert.deepEqual(bits(access.dirty.report(0x100000, 16 * PAGE, PAGE, 64)), [2], 'still dirty');
    ioas.unmap(0x100000, 64 * PAGE);
    assert.deepEqual(bits(access.dirty.report(0x100000, 16 * PAGE, PAGE, 64)), []);
  });

  it('refuses what the uAPI refuses', () => {
    const log = new DirtyLog();
    assert.throws(() => log.start(3000, []), code('EINVAL'));
    assert.throws(() => log.start(0, []), code('EINVAL'));
    assert.throws(() => log.start(PAGE, [{ iova: 100, length: PAGE }]), code('EINVAL'));
    assert.throws(() => log.start(PAGE, [{ iova: 0, length: 0 }]), code('EINVAL'));
    assert.throws(
      () =>
        log.start(PAGE, [
          { iova: 0, length: 2 * PAGE },
          { iova: PAGE, length: PAGE },
        ]),
      code('EINVAL'),
    );
    assert.throws(() => log.start(PAGE, [{ iova: 2 ** 53 - PAGE, length: 2 * PAGE }]), code('EOVERFLOW'));
    const many = Array.from({ length: MAX_LOG_RANGES + 1 }, (_, i) => ({ iova: i * PAGE, length: PAGE }));
    assert.throws(() => log.start(PAGE, many), code('E2BIG'));
    assert.throws(() => log.report(0, PAGE, PAGE, 8), code('EINVAL'), 'not started');
    log.start(PAGE, []);
    assert.throws(() => log.start(PAGE, []), code('EBUSY'));
    assert.throws(() => log.report(0, PAGE, 2048, 8), code('EINVAL'));
    assert.throws(() => log.report(0, PAGE, 3 * PAGE, 8), code('EINVAL'));
    assert.throws(() => log.report(0, 0, PAGE, 8), code('EINVAL'));
    assert.throws(() => log.report(2 ** 53 - PAGE, 2 * PAGE, PAGE, 8), code('EOVERFLOW'));
    assert.throws(() => log.report(0, 65 * PAGE, PAGE, 8), code('E2BIG'), '65 pages need 16 bytes');
  });

  it('memory follows what was written, not the ranges logged: a 2^52-byte range costs nothing until written', () => {
    const log = new DirtyLog();
    log.start(PAGE, [{ iova: 0, length: 2 ** 52 }]);
    log.wrote(2 ** 51, 1);
    const r = log.report(2 ** 51, 64 * PAGE, PAGE, 8);
    assert.deepEqual(bits(r), [0]);
  });
});
