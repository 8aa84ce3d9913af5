/**
 * Client memory behind an fd, reached so that the client cannot hurt this
 * process through the file: a size-sealed memfd is mapped; another tmpfs
 * file goes through pread/pwrite and a page the client truncated away is
 * an EFAULT for that access (never a SIGBUS); files elsewhere are left to
 * messages; non-regular fds are refused. Budgets are checked before
 * anything is mapped, and given back on release.
 */
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Budget, OverBudget } from '../../src/base/budget.js';
import { VfioError } from '../../src/base/errors.js';
import { fdBacking, KeptFiles } from '../../src/iommufd/fd-backing.js';
import { close, dup, eventfd, memfdCreate, memoryFdInfo, openFdCount, sealSize, TMPFS_MAGIC } from '../../src/native/index.js';

const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;

/** A memfd of `size` bytes, sealed against shrinking when `sealed`; with a duplicate the test keeps. */
function memfd(size: number, sealed: boolean): { fd: number; mine: number } {
  const fd = memfdCreate('client', size);
  if (sealed) sealSize(fd);
  return { fd, mine: dup(fd) };
}

describe('fdBacking', () => {
  it('maps a size-sealed memfd: copies and views reach the same bytes; its fd kept until release (a takeover hands it on)', () => {
    const before = openFdCount();
    const { fd, mine } = memfd(1 << 20, true);
    const reach = fdBacking(fd, 4096, 8192, true);
    assert.deepEqual(reach.backing?.file, { fd, offset: 4096 });
    assert.equal(openFdCount(), before + 2, 'the fd is kept while mapped');
    assert.ok(reach.backing !== null);
    const b = reach.backing;
    assert.equal(b.reach, 'memory');
    b.writeSync!(10, Uint8Array.of(1, 2, 3));
    const seen = new Uint8Array(3);
    b.readSync!(10, seen);
    assert.deepEqual([...seen], [1, 2, 3]);
    const v = b.view!(10, 3);
    assert.deepEqual([...v], [1, 2, 3]);
    v[1] = 7;
    b.readSync!(10, seen);
    assert.equal(seen[1], 7);
    assert.throws(() => b.readSync!(8190, new Uint8Array(4)), isCode('EFAULT'), 'past the mapping');
    b.release();
    b.release();
    assert.equal(v.byteLength, 0, 'views are detached at release');
    close(mine);
    assert.equal(openFdCount(), before, 'the fd was closed at release');
  });

  it('an unsealed memfd is reached with pread/pwrite; once the client shrinks it, an access is EFAULT, not SIGBUS', () => {
    const { fd, mine } = memfd(64 * 1024, false);
    const reach = fdBacking(fd, 0, 64 * 1024, true);
    assert.ok(reach.backing !== null);
    const b = reach.backing;
    assert.equal(b.reach, 'file');
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only its absence is looked at
    assert.equal(b.view, undefined, 'no views of memory that may vanish');
    b.writeSync!(60_000, Uint8Array.of(9, 8));
    const seen = new Uint8Array(2);
    b.readSync!(60_000, seen);
    assert.deepEqual([...seen], [9, 8]);
    ftruncateSync(mine, 4096);
    assert.throws(() => b.readSync!(60_000, seen), isCode('EFAULT'));
    assert.throws(() => b.writeSync!(60_000, seen), isCode('EFAULT'));
    assert.equal(memoryFdInfo(mine).size, 4096, 'a refused write does not grow the file back');
    b.readSync!(0, seen); // what is left still reads
    b.release();
    close(mine);
  });

  it('a file outside tmpfs is left to messages (its fd closed); a fd that is not a regular file is EINVAL', () => {
    const before = openFdCount();
    const dir = mkdtempSync(join(tmpdir(), 'uvfio-fdb-'));
    try {
      const path = join(dir, 'ram');
      writeFileSync(path, new Uint8Array(8192));
      const fd = openSync(path, 'r+');
      if (memoryFdInfo(fd).fsType === TMPFS_MAGIC) {
        closeSync(fd); // /tmp is tmpfs here: that case is the test above
      } else {
        const reach = fdBacking(fd, 0, 8192, true);
        assert.equal(reach.backing, null);
        assert.match(reach.backing === null ? reach.why : '', /file system/);
      }
      assert.throws(() => fdBacking(eventfd(), 0, 4096, true), isCode('EINVAL'));
      assert.equal(openFdCount(), before, 'every fd passed was closed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a range beyond the end of the file is EINVAL, an offset past 2^53 EOVERFLOW; the fd is closed either way', () => {
    const before = openFdCount();
    const a = memfd(4096, true);
    assert.throws(() => fdBacking(a.fd, 0, 8192, true), isCode('EINVAL'));
    const b = memfd(4096, true);
    assert.throws(() => fdBacking(b.fd, 2 ** 53, 4096, true), isCode('EOVERFLOW'));
    close(a.mine);
    close(b.mine);
    assert.equal(openFdCount(), before);
  });

  it('budgets: bytes mapped and fds kept are checked before anything is mapped, and given back', () => {
    const total = new Budget('dma-bytes-total', 1 << 20);
    const bytes = new Budget('dma-bytes', 1 << 20, total);
    const fds = new Budget('client-fds', 2);
    const big = memfd(2 << 20, true);
    assert.throws(
      () => fdBacking(big.fd, 0, 2 << 20, true, { mappedBytes: bytes, fds }),
      (e: unknown) => e instanceof OverBudget && e.limit === 'dma-bytes',
    );
    assert.equal(bytes.used, 0);
    const a = memfd(1 << 20, true);
    const mapped = fdBacking(a.fd, 0, 1 << 20, true, { mappedBytes: bytes, fds });
    assert.equal(total.used, 1 << 20);
    assert.equal(fds.used, 1, 'a mapped memfd keeps its fd, counted');
    const u1 = memfd(4096, false);
    const kept = fdBacking(u1.fd, 0, 4096, true, { mappedBytes: bytes, fds });
    const u2 = memfd(4096, false);
    assert.throws(
      () => fdBacking(u2.fd, 0, 4096, true, { mappedBytes: bytes, fds }),
      (e: unknown) => e instanceof OverBudget && e.limit === 'client-fds',
    );
    mapped.backing!.release();
    kept.backing!.release();
    assert.equal(total.used, 0);
    assert.equal(fds.used, 0);
    for (const m of [big, a, u1, u2]) close(m.mine);
  });

  it('KeptFiles: one fd kept per file however many mappings of it, counted once, closed with the last', () => {
    const before = openFdCount();
    const fds = new Budget('client-fds', 1);
    const files = new KeptFiles(fds);
    const { fd, mine } = memfd(1 << 20, true);
    const maps = [0, 4096, 8192].map((at) => fdBacking(dup(fd), at, 4096, true, { fds, files }).backing!);
    close(fd);
    assert.equal(files.size, 1);
    assert.equal(fds.used, 1, 'one fd counted for three mappings of one file');
    assert.equal(openFdCount(), before + 2, "the kept fd and the test's own");
    assert.deepEqual(
      maps.map((b) => b.file?.offset),
      [0, 4096, 8192],
    );
    assert.equal(new Set(maps.map((b) => b.file?.fd)).size, 1);
    const other = memfd(4096, true);
    assert.throws(
      () => fdBacking(other.fd, 0, 4096, true, { fds, files }),
      (e: unknown) => e instanceof OverBudget && e.limit === 'client-fds',
      'a second file needs a second fd',
    );
    maps[0]!.release();
    maps[1]!.release();
    assert.equal(fds.used, 1);
    maps[2]!.release();
    assert.equal(fds.used, 0);
    assert.equal(files.size, 0);
    close(mine);
    close(other.mine);
    assert.equal(openFdCount(), before);
  });
});
