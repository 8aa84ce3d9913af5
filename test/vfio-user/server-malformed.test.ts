/**
 * Malformed input, sent as raw bytes through a real socket: each message
 * earns its errno in an error reply (the session then goes on), or ends the
 * session where the spec says so (anything wrong with the handshake, a
 * broken stream). Fds sent with a rejected message are closed by the
 * server, and other clients never notice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERRNO, type ErrnoName } from '../../src/base/errors.js';
import { FeatureFlags, IrqSetFlags as S, PciIrq, PciRegion } from '../../src/base/uapi.js';
import { EventFd, MappedMemory, openFdCount } from '../../src/native/index.js';
import { Command as C, encodeDeviceInfoRequest, encodeMessage, HeaderFlags, type VfioUserClient } from '../../src/vfio-user/index.js';
import { b, u32, u64, zeros } from './harness.js';
import { perTestServer, QEMU_PROPOSAL, RawPeer, startServer, versionText, type Bench } from './server-harness.js';

const access = (offset: number | bigint, region: number, count: number, data?: Uint8Array) =>
  b(u64(offset), u32(region), u32(count), ...(data ? [data] : []));
const irqSet = (flags: number, index: number, start: number, count: number, data?: Uint8Array) =>
  b(u32(20 + (data?.length ?? 0)), u32(flags), u32(index), u32(start), u32(count), ...(data ? [data] : []));
const TRIG_EFD = S.DATA_EVENTFD | S.ACTION_TRIGGER;

interface Case {
  name: string;
  cmd: number;
  body: Uint8Array;
  errno: ErrnoName;
  flags?: number;
  /** eventfds to send along (they must all be closed by the server) */
  fds?: number;
  /** send a memfd instead of eventfds */
  memfd?: boolean;
}

/** After VERSION: each earns an error reply, and the session goes on. */
const afterHandshake: Case[] = [
  { name: 'unknown command 99', cmd: 99, body: zeros(8), errno: 'ENOSYS' },
  { name: 'command 0', cmd: 0, body: zeros(8), errno: 'ENOSYS' },
  { name: 'DMA_READ sent to the server', cmd: C.DMA_READ, body: b(u64(0), u64(4)), errno: 'EINVAL' },
  { name: 'a reply nobody asked for', cmd: C.DEVICE_RESET, body: zeros(0), flags: HeaderFlags.TYPE_REPLY, errno: 'EINVAL' },
  { name: 'message type 2', cmd: C.DEVICE_RESET, body: zeros(0), flags: 2, errno: 'EINVAL' },
  { name: 'a command with the ERROR flag', cmd: C.DEVICE_RESET, body: zeros(0), flags: HeaderFlags.ERROR, errno: 'EINVAL' },
  { name: 'DIRTY_PAGES (removed)', cmd: C.DIRTY_PAGES, body: b(u32(8), u32(1)), errno: 'EOPNOTSUPP' },
  { name: 'DIRTY_PAGES, short', cmd: C.DIRTY_PAGES, body: b(u32(8)), errno: 'EINVAL' },
  { name: 'a second VERSION', cmd: C.VERSION, body: versionText(0, 2, '{}'), errno: 'EINVAL' },
  { name: 'DMA_MAP, short', cmd: C.DMA_MAP, body: zeros(24), errno: 'EINVAL' },
  { name: 'DMA_MAP, two fds', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0x1000)), fds: 2, errno: 'EINVAL' },
  { name: 'DMA_MAP, unknown flags', cmd: C.DMA_MAP, body: b(u32(32), u32(4), u64(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, size 0', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0)), errno: 'EINVAL' },
  { name: 'DMA_MAP, argsz 16', cmd: C.DMA_MAP, body: b(u32(16), u32(3), u64(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, wraps 2^64', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(-4096n), u64(0x2000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, beyond 2^53', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(2n ** 60n), u64(0x1000)), errno: 'EOVERFLOW' },
  {
    name: 'DMA_MAP, an fd past the end of the memfd',
    cmd: C.DMA_MAP,
    body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0x10000)),
    memfd: true,
    errno: 'EINVAL',
  },
  {
    name: 'DMA_MAP, an eventfd for memory (not a regular file)',
    cmd: C.DMA_MAP,
    body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0x1000)),
    fds: 1,
    errno: 'EINVAL',
  },
  { name: 'DMA_UNMAP, unknown flags', cmd: C.DMA_UNMAP, body: b(u32(24), u32(4), u64(0), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, ALL with an address', cmd: C.DMA_UNMAP, body: b(u32(24), u32(2), u64(0x1000), u64(0)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, dirty bitmap', cmd: C.DMA_UNMAP, body: b(u32(40), u32(1), u64(0x1000), u64(0x1000), u64(4096), u64(0)), errno: 'EOPNOTSUPP' },
  { name: 'DMA_UNMAP, nothing there', cmd: C.DMA_UNMAP, body: b(u32(24), u32(0), u64(0x1000), u64(0x1000)), errno: 'ENOENT' },
  { name: 'DMA_UNMAP, size 0', cmd: C.DMA_UNMAP, body: b(u32(24), u32(0), u64(0x1000), u64(0)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, short', cmd: C.DMA_UNMAP, body: zeros(16), errno: 'EINVAL' },
  { name: 'GET_INFO, argsz 8', cmd: C.DEVICE_GET_INFO, body: b(u32(8), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_INFO, short', cmd: C.DEVICE_GET_INFO, body: b(u32(16)), errno: 'EINVAL' },
  { name: 'GET_INFO with an fd', cmd: C.DEVICE_GET_INFO, body: b(u32(16), u32(0), u32(0), u32(0)), fds: 1, errno: 'EINVAL' },
  { name: 'GET_REGION_INFO, region 99', cmd: C.DEVICE_GET_REGION_INFO, body: b(u32(32), u32(0), u32(99), zeros(20)), errno: 'EINVAL' },
  { name: 'GET_REGION_INFO, argsz 16', cmd: C.DEVICE_GET_REGION_INFO, body: b(u32(16), u32(0), u32(0), zeros(20)), errno: 'EINVAL' },
  { name: 'GET_REGION_IO_FDS, flags set', cmd: C.DEVICE_GET_REGION_IO_FDS, body: b(u32(64), u32(1), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_IRQ_INFO, index 9', cmd: C.DEVICE_GET_IRQ_INFO, body: b(u32(16), u32(0), u32(9), u32(0)), errno: 'EINVAL' },
  {
    name: 'SET_IRQS, two DATA flags',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.DATA_NONE | S.DATA_BOOL | S.ACTION_TRIGGER, PciIrq.MSI, 0, 1),
    errno: 'EINVAL',
  },
  { name: 'SET_IRQS, no action', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.DATA_NONE, PciIrq.MSI, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, unknown flag', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.DATA_NONE | S.ACTION_TRIGGER | 64, PciIrq.MSI, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 0 start 1', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.DATA_NONE | S.ACTION_TRIGGER, PciIrq.MSI, 1, 0), errno: 'EINVAL' },
  {
    name: 'SET_IRQS, bools missing',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.DATA_BOOL | S.ACTION_TRIGGER, PciIrq.MSI, 0, 4, zeros(2)),
    errno: 'EINVAL',
  },
  { name: 'SET_IRQS, 2 eventfds for count 3', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_EFD, PciIrq.MSIX, 0, 3), fds: 2, errno: 'EINVAL' },
  {
    name: 'SET_IRQS, eventfds with DATA_NONE',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.DATA_NONE | S.ACTION_TRIGGER, PciIrq.MSIX, 0, 2),
    fds: 2,
    errno: 'EINVAL',
  },
  { name: 'SET_IRQS, index 7', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_EFD, 7, 0, 1), fds: 1, errno: 'EINVAL' },
  { name: 'SET_IRQS, past the index', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_EFD, PciIrq.MSI, 3, 2), fds: 2, errno: 'EINVAL' },
  { name: 'SET_IRQS, mask of MSI-X', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.DATA_NONE | S.ACTION_MASK, PciIrq.MSIX, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, a memfd for an eventfd', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_EFD, PciIrq.MSIX, 0, 1), memfd: true, errno: 'EINVAL' },
  { name: 'REGION_READ, short', cmd: C.REGION_READ, body: zeros(8), errno: 'EINVAL' },
  { name: 'REGION_READ with data', cmd: C.REGION_READ, body: access(0, 0, 4, zeros(4)), errno: 'EINVAL' },
  { name: 'REGION_READ, count over max_data_xfer_size', cmd: C.REGION_READ, body: access(0, PciRegion.BAR2, 2 * 1024 * 1024), errno: 'EINVAL' },
  { name: 'REGION_READ, past the region', cmd: C.REGION_READ, body: access(4094, PciRegion.BAR0, 4), errno: 'EINVAL' },
  { name: 'REGION_READ, offset beyond 2^53', cmd: C.REGION_READ, body: access(2n ** 60n, PciRegion.BAR0, 4), errno: 'EINVAL' },
  { name: 'REGION_READ, region 12', cmd: C.REGION_READ, body: access(0, 12, 4), errno: 'EINVAL' },
  { name: 'REGION_READ with an fd', cmd: C.REGION_READ, body: access(0, 0, 4), fds: 1, errno: 'EINVAL' },
  { name: 'REGION_WRITE, count and data differ', cmd: C.REGION_WRITE, body: access(0, 0, 4, zeros(3)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, 201 writes', cmd: C.REGION_WRITE_MULTI, body: b(u64(201)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, a 9-byte write', cmd: C.REGION_WRITE_MULTI, body: b(u64(1), access(0, 0, 9, zeros(8))), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, body and wr_cnt differ', cmd: C.REGION_WRITE_MULTI, body: b(u64(2), access(0, 0, 4, zeros(8))), errno: 'EINVAL' },
  { name: 'DEVICE_RESET with a body', cmd: C.DEVICE_RESET, body: zeros(4), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, no operation', cmd: C.DEVICE_FEATURE, body: b(u32(8), u32(1)), errno: 'EINVAL' },
  {
    name: 'DEVICE_FEATURE, GET|SET without PROBE',
    cmd: C.DEVICE_FEATURE,
    body: b(u32(16), u32(1 | FeatureFlags.GET | FeatureFlags.SET)),
    errno: 'EINVAL',
  },
  { name: 'DEVICE_FEATURE, unknown flag', cmd: C.DEVICE_FEATURE, body: b(u32(8), u32(1 | (1 << 20))), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, argsz 4', cmd: C.DEVICE_FEATURE, body: b(u32(4), u32(1 | FeatureFlags.GET)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ, size over max', cmd: C.MIG_DATA_READ, body: b(u32(8 + 2 * 1024 * 1024), u32(2 * 1024 * 1024)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ, argsz too small', cmd: C.MIG_DATA_READ, body: b(u32(8), u32(16)), errno: 'EINVAL' },
  { name: 'MIG_DATA_WRITE, size and data differ', cmd: C.MIG_DATA_WRITE, body: b(u32(12), u32(4), zeros(3)), errno: 'EINVAL' },
];

/** A VERSION 0.0 proposal carrying `json`. */
const proposal = (json: string): Uint8Array => encodeMessage(1, C.VERSION, 0, versionText(0, 0, json));

/** Before or during the handshake: an error reply, then the server closes. */
const handshake: { name: string; bytes: Uint8Array; errno: ErrnoName | null; fds?: number }[] = [
  { name: 'a command before VERSION', bytes: encodeDeviceInfoRequest(1), errno: 'EINVAL' },
  { name: 'VERSION, JSON that does not parse', bytes: proposal('{"capabilities":'), errno: 'EINVAL' },
  { name: 'VERSION, JSON that is not an object', bytes: proposal('[1,2]'), errno: 'EINVAL' },
  { name: 'VERSION, max_msg_fds as a string', bytes: proposal('{"capabilities":{"max_msg_fds":"16"}}'), errno: 'EINVAL' },
  { name: 'VERSION, negative max_data_xfer_size', bytes: proposal('{"capabilities":{"max_data_xfer_size":-1}}'), errno: 'EINVAL' },
  { name: 'VERSION, twin_socket not an object', bytes: proposal('{"capabilities":{"twin_socket":true}}'), errno: 'EINVAL' },
  { name: 'VERSION, pgsizes below 4 KiB', bytes: proposal('{"capabilities":{"pgsizes":2048}}'), errno: 'EINVAL' },
  { name: 'VERSION, migration pgsize 4095', bytes: proposal('{"capabilities":{"migration":{"pgsize":4095}}}'), errno: 'EINVAL' },
  { name: 'VERSION, major 1', bytes: encodeMessage(1, C.VERSION, 0, versionText(1, 0, QEMU_PROPOSAL)), errno: 'EINVAL' },
  { name: 'VERSION, JSON without its NUL', bytes: encodeMessage(1, C.VERSION, 0, versionText(0, 0, '{}').subarray(0, 6)), errno: 'EINVAL' },
  { name: 'VERSION, 2 bytes', bytes: encodeMessage(1, C.VERSION, 0, b([2, 0])), errno: 'EINVAL' },
  { name: 'VERSION with fds', bytes: proposal(QEMU_PROPOSAL), fds: 2, errno: 'EINVAL' },
  { name: 'msg_size below the header', bytes: b([2, 1], [2, C.VERSION], u32(8), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'msg_size far above the limit', bytes: b([2, 1], [2, C.VERSION], u32(0x7fff_0000), u32(0), u32(0)), errno: 'EMSGSIZE' },
];

let bench: Bench;

perTestServer({}, (b) => {
  bench = b;
});

/** fds to send with a case: eventfds, or a 4 KiB memfd. */
function makeFds(count: number, memfd: boolean): { fds: number[]; close(): void } {
  if (memfd) {
    const m = MappedMemory.create('malformed', 4096);
    return { fds: [m.fd], close: () => m.close() };
  }
  const e = Array.from({ length: count }, () => EventFd.create());
  return { fds: e.map((x) => x.fd), close: () => e.forEach((x) => x.close()) };
}

describe('malformed messages after the handshake', () => {
  it(`each of ${afterHandshake.length} earns its errno, its fds are closed, and the session goes on`, async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    let id = 100;
    for (const c of afterHandshake) {
      const open = openFdCount();
      const sent = makeFds(c.fds ?? 0, c.memfd === true);
      peer.write(encodeMessage(++id, c.cmd, c.flags ?? HeaderFlags.TYPE_COMMAND, c.body), sent.fds);
      sent.close();
      const reply = (await peer.next())!;
      assert.ok(reply !== null, `${c.name}: the server closed the session`);
      assert.deepEqual([reply.msgId, reply.flags & HeaderFlags.ERROR, reply.errorNo], [id, HeaderFlags.ERROR, ERRNO[c.errno]], c.name);
      assert.equal(reply.size, 16, `${c.name}: an error reply is a bare header`);
      assert.equal(openFdCount(), open, `${c.name}: fds left open`);
      // Still serving:
      peer.write(encodeDeviceInfoRequest(++id));
      const info = (await peer.next())!;
      assert.deepEqual([info.msgId, info.errorNo], [id, 0], `${c.name}: the session broke`);
    }
    peer.close();
  });

  it('NO_REPLY silences the error reply too', async () => {
    const peer = new RawPeer(bench.path());
    await peer.negotiate();
    peer.write(encodeMessage(1, 99, HeaderFlags.NO_REPLY, zeros(4)));
    peer.write(encodeMessage(2, C.REGION_READ, HeaderFlags.NO_REPLY, access(4094, 0, 4)));
    peer.write(encodeDeviceInfoRequest(3));
    assert.equal((await peer.next())!.msgId, 3);
    peer.close();
  });

  it('another client of the same device never notices', async () => {
    const good: VfioUserClient = await bench.connect();
    const bad = new RawPeer(bench.path());
    await bad.negotiate();
    bad.write(b([2, 1], [2, 1], u32(4), u32(0), u32(0)));
    await bad.waitClosed();
    assert.equal((await good.getDeviceInfo()).numIrqs, 5);
    good.close();
  });
});

describe('malformed handshakes and broken streams end the session', () => {
  for (const c of handshake) {
    it(c.name, async () => {
      const peer = new RawPeer(bench.path());
      const sent = makeFds(c.fds ?? 0, false);
      peer.write(c.bytes, sent.fds);
      sent.close();
      const reply = await peer.next();
      if (c.errno !== null) {
        assert.ok(reply !== null, 'an error reply first');
        assert.deepEqual([reply.flags & HeaderFlags.ERROR, reply.errorNo], [HeaderFlags.ERROR, ERRNO[c.errno]]);
      }
      await peer.waitClosed();
      peer.close();
    });
  }

  it('open_device refusing: VERSION answers its errno and the session ends', async () => {
    const failing = startServer({ names: ['failing'], device: { failOpen: 'EBUSY' } });
    const peer = new RawPeer(failing.path());
    peer.write(encodeMessage(1, C.VERSION, 0, versionText(0, 2, '{}')));
    const reply = (await peer.next())!;
    assert.equal(reply.errorNo, ERRNO.EBUSY);
    await peer.waitClosed();
    peer.close();
    await failing.close();
  });
});
