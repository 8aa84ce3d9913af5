import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ftruncateSync, readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VfioError } from '../../src/base/errors.js';
import { close, eventfd, MappedMemory, memfdCreate, mmap, munmap, openFdCount } from '../../src/native/index.js';
import { until } from '../support/until.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

/** Lines of /proc/self/maps that belong to memfd `name`. */
function mappingsOf(name: string): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes(`/memfd:${name} `)).length;
}

test('munmap detaches: every view becomes length 0 and a second munmap is a no-op', () => {
  const fd = memfdCreate('uvfio-detach', 8192);
  const buf = mmap(fd, 0, 8192, { read: true, write: true });
  const whole = new Uint8Array(buf);
  const part = new DataView(buf, 4096, 16);
  whole[4096] = 42;
  assert.equal(part.getUint8(0), 42);
  assert.equal(mappingsOf('uvfio-detach'), 1);
  munmap(buf);
  assert.equal(buf.byteLength, 0);
  assert.equal(whole.length, 0);
  assert.equal(whole[4096], undefined, 'no access to unmapped memory');
  assert.throws(() => part.getUint8(0), TypeError);
  assert.equal(mappingsOf('uvfio-detach'), 0);
  munmap(buf);
  close(fd);
});

test('mmap refuses what the kernel would refuse or what would crash later', () => {
  const fd = memfdCreate('uvfio-refuse', 4096);
  const rw = { read: true, write: true };
  assert.throws(() => mmap(fd, 1, 4096, rw), isCode('EINVAL'), 'offset not page aligned');
  assert.throws(() => mmap(fd, 0, 0, rw), isCode('EINVAL'), 'length 0');
  assert.throws(() => mmap(fd, 0, 8192, rw), isCode('EINVAL'), 'past the end of the file: SIGBUS on touch');
  assert.throws(() => mmap(fd, 4096, 4096, rw), isCode('EINVAL'), 'offset at the end');
  assert.throws(() => mmap(fd, 0, 4096, { read: false, write: true }), isCode('EINVAL'));
  assert.throws(() => mmap(1 << 20, 0, 4096, rw), isCode('EBADF'));
  const efd = eventfd();
  assert.throws(() => mmap(efd, 0, 4096, rw), isCode('ENODEV'), 'an eventfd cannot be mapped');
  close(efd);
  assert.throws(() => munmap(new ArrayBuffer(8)), isCode('EINVAL'), 'not ours');
  const ro = mmap(fd, 0, 4096, { read: true, write: false });
  assert.equal(new Uint8Array(ro)[0], 0);
  munmap(ro);
  close(fd);
});

test('a forgotten mapping is unmapped when its ArrayBuffer is collected', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const fd = memfdCreate('uvfio-forgotten', 4096);
  (() => {
    const buf = mmap(fd, 0, 4096, { read: true, write: true });
    new Uint8Array(buf)[0] = 1;
  })();
  assert.equal(mappingsOf('uvfio-forgotten'), 1);
  await until(() => {
    gc();
    return mappingsOf('uvfio-forgotten') === 0;
  }, 'the finalizer to unmap');
  close(fd);
});

test('MappedMemory.create shares with MappedMemory.map; its size is sealed; close is idempotent', () => {
  const before = openFdCount();
  const mem = MappedMemory.create('uvfio-shared', 2 * 4096);
  const other = MappedMemory.map(mem.fd, 4096, 4096);
  mem.bytes[4096 + 3] = 0x5a;
  assert.equal(other.bytes[3], 0x5a);
  other.bytes[0] = 0x11;
  assert.equal(mem.bytes[4096], 0x11);
  assert.throws(() => ftruncateSync(mem.fd, 0), /EPERM/, 'a peer cannot truncate it under us');
  other.close();
  assert.equal(other.bytes.length, 0);
  assert.equal(mem.bytes[4096], 0x11, 'the other mapping is untouched');
  mem.close();
  mem.close();
  assert.equal(mem.bytes.length, 0);
  assert.equal(openFdCount(), before, 'the owned memfd was closed, nothing leaked');
});

test('MappedMemory.map does not own the fd, and the fd may be closed while mapped', () => {
  const fd = memfdCreate('uvfio-notowned', 4096);
  const mem = MappedMemory.map(fd, 0, 4096, { read: true, write: true });
  close(fd);
  mem.bytes[10] = 1;
  assert.equal(mem.bytes[10], 1);
  mem.close();
});
