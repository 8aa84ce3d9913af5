/**
 * Crash by SIGBUS: a client DMA_MAPs a memfd it did not seal against
 * shrinking, truncates it to nothing, and makes the device touch that
 * memory. A touch of a truncated page through a mapping is SIGBUS, which
 * would kill the daemon and every device with it: such memory is reached
 * with pread/pwrite instead, so the access fails (EFAULT) and only that
 * device's DMA does. Also: an fd that is not a regular file is refused,
 * and a size-sealed memfd (QEMU's default) is still mapped and used.
 *
 * The daemon's own devices do no DMA, so this runs against the real server
 * in a process of its own, over fixture devices with DMA doorbells.
 */
import { strict as assert } from 'node:assert';
import { ftruncateSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ERRNO, isVfioError } from '../../src/base/errors.js';
import { PciRegion } from '../../src/base/uapi.js';
import { close, eventfd, MappedMemory, memfdCreate, sealSize } from '../../src/native/index.js';
import { Command, encodeDmaMap, type VfioUserClient } from '../../src/vfio-user/index.js';
import { DMA_BUF, DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, REG_IOVA, REG_LEN } from '../vfio-user/fixture-device.js';
import { Hostile } from './harness.js';

const started: Hostile[] = [];
const fds: number[] = [];
after(() => {
  for (const h of started) h.kill();
  for (const fd of fds.splice(0)) close(fd);
});

const IOVA = 0x10_0000;
const SIZE = 64 * 1024;

function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

/** DMA_MAP of `fd` at IOVA; the reply's errno. */
async function mapFd(c: VfioUserClient, fd: number, size = SIZE): Promise<number> {
  const body = encodeDmaMap(0, { readable: true, writable: true, offset: 0n, address: BigInt(IOVA), size: BigInt(size) }).subarray(16);
  return (await c.request(Command.DMA_MAP, body, { fds: [fd] })).errorNo;
}

/** Rings a DMA doorbell of the fixture: the device reads or writes `len` bytes at `iova`. */
async function ring(c: VfioUserClient, doorbell: number, iova: number, len: number): Promise<void> {
  await c.regionWrite(PciRegion.BAR0, REG_IOVA, u64(iova));
  await c.regionWrite(PciRegion.BAR0, REG_LEN, u64(len));
  await c.regionWrite(PciRegion.BAR0, doorbell, u64(1));
}

describe('hostile: client memory that shrinks under the device', () => {
  it('an unsealed memfd truncated after DMA_MAP: the device access fails with EFAULT, the daemon lives', async () => {
    const h = await Hostile.startServer();
    started.push(h);
    const c = await h.connectAttacker();
    const fd = memfdCreate('shrinking', SIZE);
    fds.push(fd);
    await h.underAttack(async () => {
      assert.equal(await mapFd(c, fd), 0, 'an unsealed memfd is accepted');
      await ring(c, DOORBELL_DMA_WRITE, IOVA + 100, 16); // it works while the memory is there
      ftruncateSync(fd, 0);
      for (const doorbell of [DOORBELL_DMA_READ, DOORBELL_DMA_WRITE]) {
        await assert.rejects(ring(c, doorbell, IOVA + 100, 16), (e) => isVfioError(e, 'EFAULT'), 'the touch of a vanished page is EFAULT');
      }
      // The client gives the memory back: the device reaches it again.
      ftruncateSync(fd, SIZE);
      await ring(c, DOORBELL_DMA_READ, IOVA + 100, 16);
    });
    c.close();
    await h.recovered();
    await h.stop();
  });

  it('a size-sealed memfd is mapped and reached directly; a non-regular fd is EINVAL', async () => {
    const h = await Hostile.startServer();
    started.push(h);
    const c = await h.connectAttacker();
    const fd = memfdCreate('sealed', SIZE);
    fds.push(fd);
    sealSize(fd);
    const mine = MappedMemory.map(fd, 0, SIZE);
    try {
      await h.underAttack(async () => {
        const ev = eventfd();
        fds.push(ev);
        assert.equal(await mapFd(c, ev), ERRNO.EINVAL, 'an eventfd is no memory');
        assert.equal(await mapFd(c, fd, SIZE * 2), ERRNO.EINVAL, 'a range past the end of the file');
        assert.equal(await mapFd(c, fd), 0);
        mine.bytes.set([1, 2, 3, 4], 200);
        await ring(c, DOORBELL_DMA_READ, IOVA + 200, 4);
        const got = await c.regionRead(PciRegion.BAR0, DMA_BUF, 4);
        assert.deepEqual([...got], [1, 2, 3, 4]);
      });
    } finally {
      mine.close();
    }
    c.close();
    await h.recovered();
    await h.stop();
  });
});
