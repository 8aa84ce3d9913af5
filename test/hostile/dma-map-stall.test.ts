/**
 * Stall by one message: one 32-byte DMA_MAP of a sparse memfd of terabytes.
 * The daemon used to map it in 1 GiB pieces, each an ArrayBuffer whose
 * size V8 counts as external memory, collecting garbage for every one:
 * seconds of a frozen event loop per message, before any limit was
 * checked. Now the size is checked against the client's and the daemon's
 * budgets before anything is mapped (ENOSPC past them), and what is
 * mapped is mapped once, with no ArrayBuffer.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { ERRNO } from '../../src/base/errors.js';
import { close, memfdCreate, sealSize } from '../../src/native/index.js';
import { Command, encodeDmaMap, type VfioUserClient } from '../../src/vfio-user/index.js';
import { Hostile, usageOf } from './harness.js';

const GiB = 1024 * 1024 * 1024;
const TiB = 1024 * GiB;

const started: Hostile[] = [];
const fds: number[] = [];
after(() => {
  for (const h of started) h.kill();
  for (const fd of fds.splice(0)) close(fd);
});

/** A sparse memfd of `size` bytes, size-sealed as QEMU's are. */
function sparse(size: number): number {
  const fd = memfdCreate('sparse', size);
  fds.push(fd);
  sealSize(fd);
  return fd;
}

/** DMA_MAP of `size` bytes of `fd` at `iova`: the reply's errno and how long it took. */
async function mapFd(c: VfioUserClient, fd: number, iova: number, size: number): Promise<{ errno: number; ms: number }> {
  const body = encodeDmaMap(0, { readable: true, writable: true, offset: 0n, address: BigInt(iova), size: BigInt(size) }).subarray(16);
  const t = performance.now();
  const { errorNo } = await c.request(Command.DMA_MAP, body, { fds: [fd] });
  return { errno: errorNo, ms: performance.now() - t };
}

describe('hostile: stall by one DMA_MAP', () => {
  it('2 TiB and 60,000 GiB of sparse memfd: refused at once past the budgets (dma-bytes 1T)', async () => {
    const h = await Hostile.start();
    started.push(h);
    const c = await h.connectAttacker({ timeoutMs: 30_000 });
    await h.underAttack(async () => {
      for (const size of [2 * TiB, 60_000 * GiB]) {
        const r = await mapFd(c, sparse(size), 0, size);
        assert.equal(r.errno, ERRNO.ENOSPC, `${size / GiB} GiB`);
      }
      // Under the budget, a large mapping is one mmap: no stall either.
      const r = await mapFd(c, sparse(512 * GiB), 0, 512 * GiB);
      assert.equal(r.errno, 0);
      assert.ok(r.ms < 2_000, `512 GiB mapped in ${r.ms.toFixed(0)} ms`);
    });
    const line = await h.daemon.waitFor((l) => l.msg === 'vfio-user client refused: over a limit', 2_000);
    assert.equal(line.limit, 'dma-bytes');
    c.close();
    await h.recovered();
    await h.stop();
  });

  it('with the budgets raised, 60,000 GiB is one mapping made at once', async () => {
    const h = await Hostile.start({ daemonArgs: ['--limit', 'dma-bytes=64T', '--limit', 'dma-bytes-total=64T'] });
    started.push(h);
    const c = await h.connectAttacker({ timeoutMs: 30_000 });
    const before = usageOf(h.pid).rss;
    await h.underAttack(async () => {
      const r = await mapFd(c, sparse(60_000 * GiB), 0, 60_000 * GiB);
      assert.equal(r.errno, 0);
      assert.ok(r.ms < 2_000, `mapped in ${r.ms.toFixed(0)} ms`);
    });
    assert.ok(usageOf(h.pid).rss < before + 64 * 1024 * 1024, 'mapping costs no memory until touched');
    c.close();
    await h.recovered();
    await h.stop();
  });
});
