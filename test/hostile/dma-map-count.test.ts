/**
 * Crash by mapping count: every DMA_MAP of a memfd is a memory mapping of
 * the daemon, and past vm.max_map_count mmap fails (and so does V8's own
 * allocation: the daemon died with SIGSEGV). 65,535 per client was allowed,
 * more than the whole process may have. Now all clients together hold at
 * most dma-maps-total (a quarter of vm.max_map_count): past it DMA_MAP is
 * ENOSPC, logged naming the client, for one client or several.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ERRNO } from '../../src/base/errors.js';
import { close, memfdCreate, sealSize } from '../../src/native/index.js';
import { Command, encodeDmaMap, type VfioUserClient } from '../../src/vfio-user/index.js';
import { Hostile } from './harness.js';

const PAGE = 4096;
const MAX_MAP_COUNT = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
/** More mappings than the process may have at all. */
const ATTEMPTS = MAX_MAP_COUNT + 500;

const started: Hostile[] = [];
const fds: number[] = [];
after(() => {
  for (const h of started) h.kill();
  for (const fd of fds.splice(0)) close(fd);
});

/** DMA_MAPs page after page of one sealed memfd, pipelined `window` at a time: errnos counted. */
async function mapPages(c: VfioUserClient, fd: number, first: number, count: number, window = 256): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  for (let at = 0; at < count; at += window) {
    const batch: Promise<void>[] = [];
    for (let i = at; i < Math.min(count, at + window); i++) {
      const page = first + i;
      const body = encodeDmaMap(0, {
        readable: true,
        writable: true,
        offset: BigInt(page * PAGE),
        address: BigInt(page * PAGE),
        size: BigInt(PAGE),
      }).subarray(16);
      batch.push(c.request(Command.DMA_MAP, body, { fds: [fd] }).then((f) => void seen.set(f.errorNo, (seen.get(f.errorNo) ?? 0) + 1)));
    }
    await Promise.all(batch);
  }
  return seen;
}

describe('hostile: more DMA mappings than the process may have', () => {
  it(`${ATTEMPTS} 4 KiB DMA_MAPs from two clients: the daemon-wide budget says ENOSPC, the daemon lives`, async () => {
    const h = await Hostile.start();
    started.push(h);
    const fd = memfdCreate('pages', ATTEMPTS * PAGE);
    fds.push(fd);
    sealSize(fd);
    const a = await h.connectAttacker({ timeoutMs: 60_000 });
    const b = await h.connectAttacker({ timeoutMs: 60_000 });
    const total = Math.floor(MAX_MAP_COUNT / 4);
    await h.underAttack(async () => {
      const half = Math.ceil(ATTEMPTS / 2);
      const [ra, rb] = await Promise.all([mapPages(a, fd, 0, half), mapPages(b, fd, half, ATTEMPTS - half)]);
      const ok = (ra.get(0) ?? 0) + (rb.get(0) ?? 0);
      const refused = (ra.get(ERRNO.ENOSPC) ?? 0) + (rb.get(ERRNO.ENOSPC) ?? 0);
      assert.equal(ok, total, 'exactly dma-maps-total mappings are made');
      assert.equal(refused, ATTEMPTS - total, 'every other one is ENOSPC');
    });
    const line = await h.daemon.waitFor((l) => l.msg === 'vfio-user client refused: over a limit', 2_000);
    assert.equal(line.limit, 'dma-maps-total');
    a.close();
    b.close();
    await h.recovered();
    await h.stop();
  });
});
