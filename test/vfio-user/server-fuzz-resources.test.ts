/**
 * Seeded resource-exhaustion sequences through real sockets, under small
 * limits: clients of two devices connect and hang up, map and unmap DMA
 * memory behind every kind of fd a hostile client may pass (none, a sealed
 * memfd, one it truncates and grows meanwhile, a 2 TiB sparse one, an
 * eventfd, a pipe), hand over and replace interrupt eventfds (some full
 * and blocking), and ring the device's DMA doorbells, at random. Every
 * command is answered with success or an errno the server promises; no
 * client ever holds more than its budgets allow, nor all of them more than
 * the server's; and once everyone left, every fd the server took is
 * closed. The server runs in this process: a SIGBUS or a blocked write
 * would take the test down with it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ERRNO } from '../../src/base/errors.js';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { closeFds, eventfd, eventfdWrite, memfdCreate, openFdCount, sealSize } from '../../src/native/index.js';
import { Command, encodeDmaMap, encodeDmaUnmap, encodeSetIrqs, type VfioUserClient } from '../../src/vfio-user/index.js';
import { until } from '../support/until.js';
import { DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, DOORBELL_IRQ, REG_IOVA, REG_LEN } from './fixture-device.js';
import { prng } from './harness.js';
import { startServer } from './server-harness.js';

const SEED = Number(process.env['UVFIO_FUZZ_SEED'] ?? 0xdead);
const STEPS = Number(process.env['UVFIO_FUZZ_RESOURCE_STEPS'] ?? 600);
const PAGE = 4096;
const MiB = 1024 * 1024;
const LIMITS = {
  maxDmaMaps: 6,
  maxDmaMapsTotal: 10,
  maxDmaBytes: MiB,
  maxDmaBytesTotal: 2 * MiB,
  maxIrqFds: 3,
  maxClientFds: 5,
  dmaTimeoutMs: 50,
};
/** What a command may fail with here. */
const PROMISED = new Set<number>([0, ERRNO.EINVAL, ERRNO.EEXIST, ERRNO.ENOSPC, ERRNO.ENOENT, ERRNO.EFAULT, ERRNO.EPERM, ERRNO.ETIMEDOUT, ERRNO.EIO]);

const u64 = (v: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

describe('fuzzing what clients can make the server hold', () => {
  it(`${STEPS} seeded steps (seed ${SEED}) of maps, unmaps, eventfds, doorbells and hang-ups stay within the budgets`, async () => {
    const baseline = openFdCount();
    const bench = startServer({ names: ['dev0', 'dev1'], limits: LIMITS });
    const r = prng(SEED);
    // The fds clients pass (each message carries a duplicate the server owns).
    const sealed = memfdCreate('sealed', 4 * MiB);
    sealSize(sealed);
    const shrinking = memfdCreate('shrinking', 4 * MiB);
    const huge = memfdCreate('huge', 2 * 1024 ** 4);
    sealSize(huge);
    const full = eventfd(0, { nonblock: false });
    eventfdWrite(full, 2n ** 64n - 2n);
    const quiet = eventfd(0, { nonblock: true });
    const dir = mkdtempSync(join(tmpdir(), 'uvfio-fz-'));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const pipe = openSync(join(dir, 'pipe'), 'r+');
    rmSync(dir, { recursive: true, force: true });
    const memories = [null, sealed, shrinking, huge, quiet, pipe];
    const clients: { c: VfioUserClient; device: string }[] = [];
    const seen = new Map<number, number>();
    const answered = (errno: number): void => {
      assert.ok(PROMISED.has(errno), `errno ${errno} is one the server promises`);
      seen.set(errno, (seen.get(errno) ?? 0) + 1);
    };
    try {
      for (let step = 0; step < STEPS; step++) {
        if (clients.length === 0 || (clients.length < 4 && r.int(10) === 0)) {
          const device = r.pick(['dev0', 'dev0', 'dev1']);
          clients.push({ c: await bench.connect({ name: device }), device });
          continue;
        }
        const at = r.int(clients.length);
        const { c } = clients[at]!;
        switch (r.int(9)) {
          case 0: {
            if (r.int(3) === 0) {
              c.close();
              clients.splice(at, 1);
            } else ftruncateSync(shrinking, r.pick([0, PAGE, 64 * PAGE, 4 * MiB]));
            break;
          }
          case 1:
          case 2: {
            const fd = r.pick(memories);
            const size = r.pick([PAGE, 16 * PAGE, 256 * PAGE, MiB, 2 * MiB]);
            const body = encodeDmaMap(0, {
              readable: true,
              writable: r.int(4) !== 0,
              offset: BigInt(r.int(4) * PAGE),
              address: BigInt(r.int(64) * 64 * PAGE),
              size: BigInt(size),
            }).subarray(16);
            answered((await c.request(Command.DMA_MAP, body, fd === null ? {} : { fds: [fd] })).errorNo);
            break;
          }
          case 3: {
            const all = r.int(4) === 0;
            const body = encodeDmaUnmap(0, {
              all,
              address: all ? 0n : BigInt(r.int(64) * 64 * PAGE),
              size: all ? 0n : BigInt(r.pick([PAGE, 64 * PAGE, MiB])),
            }).subarray(16);
            answered((await c.request(Command.DMA_UNMAP, body)).errorNo);
            break;
          }
          case 4: {
            const count = 1 + r.int(3);
            const fds = Array.from({ length: count }, () => r.pick([quiet, quiet, full]));
            const body = encodeSetIrqs(0, { index: PciIrq.MSIX, start: r.int(6), count, action: 'trigger', data: 'eventfd' }).subarray(16);
            answered((await c.request(Command.DEVICE_SET_IRQS, body, { fds })).errorNo);
            break;
          }
          case 5: {
            // The device raises an MSI-X vector: maybe into a full blocking eventfd.
            answered(
              await c.regionWrite(PciRegion.BAR0, DOORBELL_IRQ, u64(r.int(8))).then(
                () => 0,
                (e: { errno?: number }) => e.errno ?? -1,
              ),
            );
            break;
          }
          default: {
            // The device reaches client memory: copies, by file, by messages nobody answers.
            const doorbell = r.pick([DOORBELL_DMA_READ, DOORBELL_DMA_WRITE]);
            await c.regionWrite(PciRegion.BAR0, REG_IOVA, u64(r.int(64) * 64 * PAGE + r.int(PAGE)));
            await c.regionWrite(PciRegion.BAR0, REG_LEN, u64(1 + r.int(512)));
            answered(
              await c.regionWrite(PciRegion.BAR0, doorbell, u64(1)).then(
                () => 0,
                (e: { errno?: number }) => e.errno ?? -1,
              ),
            );
          }
        }
        checkBudgets(bench.devices.flatMap((d) => [...d.files]));
      }
    } finally {
      for (const { c } of clients) c.close();
      await until(() => bench.server.connectionCount() === 0, 'every client gone', 5_000);
      await bench.close();
      closeFds([sealed, shrinking, huge, full, quiet, pipe]);
    }
    await until(() => openFdCount() === baseline, `fds back to ${baseline} (now ${openFdCount()})`, 2000);
    if (process.env['UVFIO_FUZZ_VERBOSE']) console.log(Object.fromEntries(seen));
    // The sequences must reach the limits, not only succeed.
    assert.ok((seen.get(0) ?? 0) > STEPS / 10, JSON.stringify([...seen]));
    assert.ok((seen.get(ERRNO.ENOSPC) ?? 0) > 0, `some requests met a budget: ${JSON.stringify([...seen])}`);
  });
});

interface FileLike {
  readonly context: { ioas: { list(): readonly { length: number; backing: { reach: string } }[] } } | null;
}

/** No client holds more than its budgets allow, nor all of them more than the server's. */
function checkBudgets(files: readonly FileLike[]): void {
  let maps = 0;
  let bytes = 0;
  for (const f of files) {
    const list = f.context?.ioas.list() ?? [];
    const mine = list.filter((m) => m.backing.reach === 'memory').reduce((n, m) => n + m.length, 0);
    assert.ok(list.length <= LIMITS.maxDmaMaps, `a client holds ${list.length} mappings`);
    assert.ok(mine <= LIMITS.maxDmaBytes, `a client has ${mine} bytes mapped`);
    maps += list.length;
    bytes += mine;
  }
  assert.ok(maps <= LIMITS.maxDmaMapsTotal, `clients hold ${maps} mappings together`);
  assert.ok(bytes <= LIMITS.maxDmaBytesTotal, `clients have ${bytes} bytes mapped together`);
}
