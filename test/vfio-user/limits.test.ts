/**
 * The limits table: `--limit NAME=VALUE` parsing, defaults, and the server
 * advertising and enforcing what the table says.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Budget, OverBudget } from '../../src/base/budget.js';
import { ERRNO } from '../../src/base/errors.js';
import { PciIrq, PciRegion } from '../../src/base/uapi.js';
import { closeFds, eventfd } from '../../src/native/index.js';
import {
  Command,
  DEFAULT_LIMITS,
  DEFAULT_SERVER_LIMITS,
  defaultWords,
  formatLimit,
  LIMITS,
  limitsHelp,
  parseLimits,
  encodeRegionRead,
  encodeSetIrqs,
} from '../../src/vfio-user/index.js';
import { startServer } from './server-harness.js';

describe('limits table', () => {
  it('every limit has a distinct name, a default within its range, and a help line', () => {
    const names = new Set<string>();
    for (const [key, spec] of Object.entries(LIMITS)) {
      assert.ok(!names.has(spec.name), `${spec.name} is unique`);
      names.add(spec.name);
      assert.ok(spec.min <= spec.default && spec.default <= spec.max, `${spec.name}'s default is in range`);
      assert.equal(DEFAULT_LIMITS[key as keyof typeof DEFAULT_LIMITS], spec.default);
      assert.equal(DEFAULT_SERVER_LIMITS[key as keyof typeof DEFAULT_LIMITS], spec.default);
      assert.ok(
        limitsHelp().includes(`\n  ${spec.name} (default ${defaultWords(spec)})\n`) ||
          limitsHelp().startsWith(`  ${spec.name} (default ${defaultWords(spec)})\n`),
        spec.name,
      );
    }
  });

  it("README's security model lists every limit with its scope and default", () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    for (const spec of Object.values(LIMITS)) {
      const row = `| \`${spec.name}\` | ${spec.scope} | ${defaultWords(spec)} |`;
      assert.ok(readme.includes(row), `README has the row ${row}`);
    }
  });

  it('parses counts, byte sizes with K/M/G/T and milliseconds; later ones win', () => {
    assert.deepEqual(parseLimits([]), {});
    assert.deepEqual(parseLimits(['dma-maps=10', 'data-xfer-size=64K', 'dma-timeout=250', 'dma-maps=12']), {
      maxDmaMaps: 12,
      maxDataXferSize: 65536,
      dmaTimeoutMs: 250,
    });
    assert.deepEqual(parseLimits(['data-xfer-size=2M']), { maxDataXferSize: 2 * 1024 * 1024 });
    assert.deepEqual(parseLimits(['data-xfer-size=8192']), { maxDataXferSize: 8192 });
    // Every wait a client can impose is one of the limits: the command-line read's too.
    assert.deepEqual(parseLimits(['version-timeout=100', 'cmdline-timeout=250']), { versionTimeoutMs: 100, cmdlineTimeoutMs: 250 });
  });

  it('refuses unknown names, malformed values and values out of range, naming the argument', () => {
    const bad: Array<[string, RegExp]> = [
      ['nope=1', /no limit is named "nope"/],
      ['dma-maps', /"" is not a whole number/],
      ['dma-maps=', /"" is not a whole number/],
      ['dma-maps=1K', /"1K" is not a whole number/],
      ['dma-maps=-1', /not a whole number/],
      ['dma-maps=1.5', /not a whole number/],
      ['dma-maps=0', /0 is outside 1 to 65535/],
      ['dma-maps=65536', /65536 is outside/],
      ['msg-fds=17', /17 is outside 1 to 16/],
      ['data-xfer-size=1X', /not a number of bytes/],
      ['data-xfer-size=1k', /not a number of bytes/],
      ['data-xfer-size=1T', /1T is outside 4K to 64M/],
      ['dma-timeout=99999999999999999999', /not a whole number of milliseconds/],
    ];
    for (const [arg, message] of bad) {
      assert.throws(
        () => parseLimits([arg]),
        (err: Error & { code?: string }) => err.code === 'EINVAL' && message.test(err.message),
        arg,
      );
    }
  });

  it('formats bytes with the largest exact suffix', () => {
    assert.equal(formatLimit(LIMITS.maxDataXferSize, 1024 * 1024), '1M');
    assert.equal(formatLimit(LIMITS.maxDataXferSize, 1536 * 1024), '1536K');
    assert.equal(formatLimit(LIMITS.maxDataXferSize, 4097), '4097');
    assert.equal(formatLimit(LIMITS.dmaTimeoutMs, 5000), '5000');
  });
});

describe('Budget', () => {
  it('counts at every level and refuses, with nothing counted, past any of them', () => {
    const daemon = new Budget('total', 3);
    const a = new Budget('each', 2, daemon);
    const b = new Budget('each', 2, daemon);
    a.take(2, 'things');
    assert.throws(
      () => a.take(1, 'things'),
      (e: unknown) => e instanceof OverBudget && e.limit === 'each' && e.code === 'ENOSPC',
    );
    b.take(1, 'things');
    assert.equal(b.room, 0);
    assert.throws(
      () => b.take(1, 'things'),
      (e: unknown) => e instanceof OverBudget && e.limit === 'total',
    );
    assert.equal(b.used, 1);
    assert.equal(daemon.used, 3);
    a.release(2);
    assert.equal(daemon.used, 1);
    b.take(1, 'things');
    assert.equal(daemon.used, 2);
  });
});

describe('the server advertises and enforces the table', () => {
  it('VERSION carries max_msg_fds, max_data_xfer_size and max_dma_maps as set', async () => {
    const bench = startServer({ limits: { maxMsgFds: 4, maxDataXferSize: 65536, maxDmaMaps: 7 } });
    try {
      const c = await bench.connect();
      assert.equal(c.serverCapabilities.maxMsgFds, 4);
      assert.equal(c.serverCapabilities.maxDataXferSize, 65536);
      assert.equal(c.serverCapabilities.maxDmaMaps, 7);
      c.close();
    } finally {
      await bench.close();
    }
  });

  it('a transfer of max_data_xfer_size passes and one byte more is EINVAL; max_dma_maps mappings pass and one more is ENOSPC', async () => {
    const bench = startServer({ limits: { maxDataXferSize: 8192, maxDmaMaps: 3 } });
    try {
      const c = await bench.connect();
      // What the client was told is what it gets.
      const { maxDataXferSize, maxDmaMaps } = c.serverCapabilities;
      assert.deepEqual([maxDataXferSize, maxDmaMaps], [8192, 3]);
      const read = async (count: number) =>
        (await c.request(Command.REGION_READ, encodeRegionRead(0, 0, PciRegion.BAR2, count).subarray(16))).errorNo;
      assert.equal(await read(maxDataXferSize), 0);
      assert.equal(await read(maxDataXferSize + 1), ERRNO.EINVAL);
      for (let i = 0; i < maxDmaMaps; i++) await c.dmaMapMessages(i * 4096, new Uint8Array(4096));
      await assert.rejects(c.dmaMapMessages(maxDmaMaps * 4096, new Uint8Array(4096)), (e: Error & { code?: string }) => e.code === 'ENOSPC');
      c.close();
    } finally {
      await bench.close();
    }
  });

  it('a message with more fds than max_msg_fds is refused with EINVAL, fewer pass', async () => {
    const bench = startServer({ limits: { maxMsgFds: 2 } });
    const fds = [0, 1, 2].map(() => eventfd(0, { nonblock: true }));
    try {
      const c = await bench.connect();
      const setIrqs = (count: number) => encodeSetIrqs(0, { index: PciIrq.MSIX, start: 0, count, action: 'trigger', data: 'eventfd' }).subarray(16);
      const three = await c.request(Command.DEVICE_SET_IRQS, setIrqs(3), { fds });
      assert.equal(three.errorNo, ERRNO.EINVAL);
      assert.equal(bench.device.setIrqsLog.length, 0, 'the device never saw it');
      const two = await c.request(Command.DEVICE_SET_IRQS, setIrqs(2), { fds: fds.slice(0, 2) });
      assert.equal(two.errorNo, 0);
      assert.equal(bench.device.setIrqsLog.length, 1);
      c.close();
    } finally {
      closeFds(fds);
      await bench.close();
    }
  });
});
