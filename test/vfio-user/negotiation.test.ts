/**
 * The server's choice in VFIO_USER_VERSION, as a pure function: what each
 * known client proposes and what it gets back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVfioError } from '../../src/base/errors.js';
import { DEFAULT_SERVER_LIMITS, negotiate, parseCapabilitiesJson } from '../../src/vfio-user/index.js';
import { QEMU_PROPOSAL } from './server-harness.js';

const limits = DEFAULT_SERVER_LIMITS;

describe('negotiate', () => {
  it('answers QEMU 11.1 within what its client accepts, with its own DMA layout', () => {
    const n = negotiate({ major: 0, minor: 0, capabilities: parseCapabilitiesJson(QEMU_PROPOSAL) }, limits);
    assert.deepEqual(n.version, { major: 0, minor: 0 });
    assert.deepEqual(n.reply, {
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096n,
      writeMultiple: true,
      migration: { pgsize: 4096, maxBitmapSize: 268435456 },
    });
    // QEMU 11.1.3, live, reads and writes DMA data at body offset 16: the spec's layout.
    assert.equal(n.dmaLayout, 'spec');
    assert.equal(n.twinSocket, false);
    assert.equal(n.writeMultiple, true);
  });

  it('names only what was proposed (bench_client: fds and transfer size)', () => {
    const n = negotiate({ major: 0, minor: 2, capabilities: { maxMsgFds: 8, maxDataXferSize: 1048576 } }, limits);
    assert.deepEqual(n.reply, { maxMsgFds: 16, maxDataXferSize: 1048576 });
    assert.deepEqual(n.version, { major: 0, minor: 2 });
    assert.equal(n.dmaLayout, 'spec');
  });

  it('answers a proposal without JSON (SPDK) with an empty capability set and spec defaults', () => {
    const n = negotiate({ major: 0, minor: 1, capabilities: undefined }, limits);
    assert.deepEqual(n.reply, {});
    assert.equal(n.clientMaxMsgFds, 1);
    assert.equal(n.dmaMaxXfer, 1048576);
    assert.equal(n.dmaLayout, 'spec');
  });

  it('takes the lower minor and the lower max_dma_maps; narrows the DMA transfer to both sides', () => {
    const n = negotiate({ major: 0, minor: 9, capabilities: { maxDmaMaps: 10, maxDataXferSize: 4096 } }, { ...limits, maxDataXferSize: 65536 });
    assert.equal(n.version.minor, 2);
    assert.equal(n.reply.maxDmaMaps, 10);
    assert.equal(n.maxDmaMaps, 10);
    assert.equal(n.reply.maxDataXferSize, 65536);
    assert.equal(n.dmaMaxXfer, 4096);
  });

  it('keeps page sizes of 4 KiB and up, refuses a proposal with none', () => {
    const n = negotiate({ major: 0, minor: 2, capabilities: { pgsizes: 0x201800n } }, limits);
    assert.equal(n.reply.pgsizes, 0x201000n);
    assert.equal(n.dmaPageSize, 4096, 'DMA_MAP then takes whole 4 KiB pages');
    assert.equal(negotiate({ major: 0, minor: 2, capabilities: { pgsizes: 0x200000n } }, limits).dmaPageSize, 0x200000);
    assert.equal(negotiate({ major: 0, minor: 2, capabilities: {} }, limits).dmaPageSize, 4096, 'the spec default');
    assert.throws(
      () => negotiate({ major: 0, minor: 2, capabilities: { pgsizes: 0x800n } }, limits),
      (e) => isVfioError(e, 'EINVAL'),
    );
  });

  it('caps the dirty bitmap at 256 MiB', () => {
    const n = negotiate({ major: 0, minor: 2, capabilities: { migration: { maxBitmapSize: 2 ** 40 } } }, limits);
    assert.deepEqual(n.reply.migration, { pgsize: 4096, maxBitmapSize: 268435456 });
  });

  it('offers a twin socket only to a client that supports one and takes fds', () => {
    assert.equal(negotiate({ major: 0, minor: 2, capabilities: { twinSocket: { supported: true } } }, limits).twinSocket, true);
    assert.equal(negotiate({ major: 0, minor: 2, capabilities: { twinSocket: { supported: true }, maxMsgFds: 0 } }, limits).twinSocket, false);
    assert.equal(
      negotiate({ major: 0, minor: 2, capabilities: { twinSocket: { supported: true } } }, { ...limits, twinSocket: false }).twinSocket,
      false,
    );
    const declined = negotiate({ major: 0, minor: 2, capabilities: { twinSocket: { supported: false } } }, limits);
    assert.deepEqual(declined.reply.twinSocket, { supported: false });
  });

  it('refuses another major version', () => {
    assert.throws(
      () => negotiate({ major: 1, minor: 0, capabilities: undefined }, limits),
      (e) => isVfioError(e, 'EINVAL'),
    );
  });

  it('lets the server force a DMA layout', () => {
    assert.equal(negotiate({ major: 0, minor: 0, capabilities: undefined }, { ...limits, dmaLayout: 'spec' }).dmaLayout, 'spec');
    assert.equal(negotiate({ major: 0, minor: 2, capabilities: undefined }, { ...limits, dmaLayout: 'qemu' }).dmaLayout, 'qemu');
  });
});
