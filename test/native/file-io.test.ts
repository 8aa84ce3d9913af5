/** preadNoWait: a file read served from the page cache, never waiting for a disk. */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import { preadNoWait } from '../../src/native/index.js';

test('preadNoWait: cached bytes at once, 0 at the end of the file, EBADF for a closed fd', (t) => {
  if (preadNoWait === undefined) {
    // A worktree whose addon predates native/file-io.cc: virtio-blk then reads on threads only.
    t.skip('the addon was built before preadNoWait: rebuild it (node-gyp rebuild, see native/README.md)');
    return;
  }
  const read = preadNoWait;
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-fileio-'));
  try {
    const path = join(dir, 'f');
    const bytes = Uint8Array.from({ length: 8192 }, (_, i) => (i * 7) & 0xff);
    writeFileSync(path, bytes); // just written: in the page cache
    const fd = openSync(path, 'r');
    const dest = new Uint8Array(4096);
    assert.equal(preadNoWait(fd, dest, 1000), 4096);
    assert.deepEqual(dest, bytes.subarray(1000, 5096));
    assert.equal(preadNoWait(fd, dest, 8192), 0);
    closeSync(fd);
    assert.throws(() => read(fd, dest, 0), (e) => isVfioError(e, 'EBADF'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
