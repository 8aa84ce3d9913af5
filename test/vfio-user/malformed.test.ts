/**
 * Malformed messages, byte by byte, each with the errno it must earn — in
 * the manner of libvfio-user's Python tests. The errnos follow libvfio-user
 * for what a server receives (EINVAL nearly always) and QEMU for what a
 * client receives (E2BIG for an oversized DMA count).
 *
 * Every case goes through the real code, over a MemoryTransport: a command
 * to a server reaches a real session of a fixture device (the handlers);
 * a command or a reply to a client reaches a real VfioUserClient; a reply
 * to a server's DMA message reaches the session's DMA channel, through a
 * device access that needs it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isVfioError, VfioError, type ErrnoName } from '../../src/base/errors.js';
import { IrqSetFlags as S, PciIrq, PciRegion } from '../../src/base/uapi.js';
import { closeFds, EventFd } from '../../src/native/index.js';
import {
  Command as C,
  encodeDmaMap,
  encodeDeviceInfoRequest,
  encodeMessage,
  encodeRegionWrite,
  encodeVersionReply,
  type Frame,
  hasErrorFlag,
  HeaderFlags,
  VfioUserClient,
} from '../../src/vfio-user/index.js';
import { DOORBELL_DMA_READ, DOORBELL_DMA_WRITE, REG_IOVA, REG_LEN } from './fixture-device.js';
import { b, u32, u64, zeros } from './harness.js';
import { MemoryPeer } from './memory-peer.js';
import { startServer, type Bench } from './server-harness.js';
import { until } from '../support/until.js';

const text = (s: string, nul = true): Uint8Array => new Uint8Array([...new TextEncoder().encode(s), ...(nul ? [0] : [])]);

/** A VERSION body with the given JSON text. */
const ver = (json: string | Uint8Array): Uint8Array => b([2, 0], [2, 2], typeof json === 'string' ? text(json) : json);
const caps = (inner: string): Uint8Array => ver(`{ "capabilities": ${inner} }`);

interface Case {
  name: string;
  cmd: number;
  body: Uint8Array;
  errno: ErrnoName;
  fds?: number;
  flags?: number;
  errorNo?: number;
  /** who receives it: a server or a client, a command or a reply */
  as?: 'server' | 'client' | 'server-reply' | 'client-reply';
}

const REPLY = HeaderFlags.TYPE_REPLY;
const irqSet = (flags: number, index: number, start: number, count: number, ...data: Uint8Array[]): Uint8Array =>
  b(u32(20 + (data[0]?.length ?? 0)), u32(flags), u32(index), u32(start), u32(count), ...data);
const access = (offset: number | bigint, region: number, count: number, data?: Uint8Array): Uint8Array =>
  b(u64(offset), u32(region), u32(count), ...(data ? [data] : []));
const TRIG_EFD = S.DATA_EVENTFD | S.ACTION_TRIGGER;
const TRIG_NONE = S.DATA_NONE | S.ACTION_TRIGGER;

const cases: Case[] = [
  // ---- header and dispatch
  { name: 'a reply where a command is expected', cmd: C.DEVICE_RESET, body: zeros(0), flags: REPLY, errno: 'EINVAL' },
  { name: 'message type 2', cmd: C.DEVICE_RESET, body: zeros(0), flags: 2, errno: 'EINVAL' },
  { name: 'a command with the ERROR flag', cmd: C.DEVICE_RESET, body: zeros(0), flags: HeaderFlags.ERROR, errno: 'EINVAL' },
  { name: 'unknown command 99', cmd: 99, body: zeros(8), errno: 'ENOSYS' },
  { name: 'command 0', cmd: 0, body: zeros(8), errno: 'ENOSYS' },
  { name: 'DMA_READ sent to a server', cmd: C.DMA_READ, body: b(u64(0), u64(4)), errno: 'EINVAL' },
  { name: 'REGION_READ sent to a client', cmd: C.REGION_READ, body: access(0, 0, 4), as: 'client', errno: 'EINVAL' },
  { name: 'DIRTY_PAGES (removed)', cmd: C.DIRTY_PAGES, body: b(u32(8), u32(1)), errno: 'EOPNOTSUPP' },
  { name: 'DIRTY_PAGES, short', cmd: C.DIRTY_PAGES, body: b(u32(8)), errno: 'EINVAL' },
  { name: 'DIRTY_PAGES, START|STOP', cmd: C.DIRTY_PAGES, body: b(u32(8), u32(3)), errno: 'EINVAL' },
  { name: 'DIRTY_PAGES, argsz 4', cmd: C.DIRTY_PAGES, body: b(u32(4), u32(1)), errno: 'EINVAL' },

  // ---- VERSION
  { name: 'VERSION, 2-byte body', cmd: C.VERSION, body: b([2, 0]), errno: 'EINVAL' },
  { name: 'VERSION, no body', cmd: C.VERSION, body: zeros(0), errno: 'EINVAL' },
  { name: 'VERSION, JSON missing its NUL', cmd: C.VERSION, body: ver(text('{}', false)), errno: 'EINVAL' },
  { name: 'VERSION, JSON missing a closing brace', cmd: C.VERSION, body: ver('{'), errno: 'EINVAL' },
  { name: 'VERSION, JSON missing a closing quote', cmd: C.VERSION, body: ver('"'), errno: 'EINVAL' },
  { name: 'VERSION, empty JSON', cmd: C.VERSION, body: ver(''), errno: 'EINVAL' },
  { name: 'VERSION, JSON array', cmd: C.VERSION, body: ver('[]'), errno: 'EINVAL' },
  { name: 'VERSION, not UTF-8', cmd: C.VERSION, body: ver(new Uint8Array([0x7b, 0xff, 0x7d, 0])), errno: 'EINVAL' },
  { name: 'VERSION, capabilities a string', cmd: C.VERSION, body: caps('"23"'), errno: 'EINVAL' },
  { name: 'VERSION, max_msg_fds a string', cmd: C.VERSION, body: caps('{ "max_msg_fds": "foo" }'), errno: 'EINVAL' },
  { name: 'VERSION, max_msg_fds -1', cmd: C.VERSION, body: caps('{ "max_msg_fds": -1 }'), errno: 'EINVAL' },
  { name: 'VERSION, max_msg_fds over the limit', cmd: C.VERSION, body: caps('{ "max_msg_fds": 1025 }'), errno: 'EINVAL' },
  { name: 'VERSION, max_msg_fds 1.5', cmd: C.VERSION, body: caps('{ "max_msg_fds": 1.5 }'), errno: 'EINVAL' },
  { name: 'VERSION, max_data_xfer_size 0', cmd: C.VERSION, body: caps('{ "max_data_xfer_size": 0 }'), errno: 'EINVAL' },
  { name: 'VERSION, max_data_xfer_size 2^32', cmd: C.VERSION, body: caps('{ "max_data_xfer_size": 4294967296 }'), errno: 'EINVAL' },
  { name: 'VERSION, max_dma_maps true', cmd: C.VERSION, body: caps('{ "max_dma_maps": true }'), errno: 'EINVAL' },
  { name: 'VERSION, pgsizes a string', cmd: C.VERSION, body: caps('{ "pgsizes": "4096" }'), errno: 'EINVAL' },
  { name: 'VERSION, pgsizes 0', cmd: C.VERSION, body: caps('{ "pgsizes": 0 }'), errno: 'EINVAL' },
  { name: 'VERSION, pgsizes 2^64', cmd: C.VERSION, body: caps('{ "pgsizes": 18446744073709551616 }'), errno: 'EINVAL' },
  { name: 'VERSION, migration a string', cmd: C.VERSION, body: caps('{ "migration": "23" }'), errno: 'EINVAL' },
  { name: 'VERSION, migration.pgsize a string', cmd: C.VERSION, body: caps('{ "migration": { "pgsize": "foo" } }'), errno: 'EINVAL' },
  { name: 'VERSION, migration.pgsize 4095', cmd: C.VERSION, body: caps('{ "migration": { "pgsize": 4095 } }'), errno: 'EINVAL' },
  { name: 'VERSION, migration.max_bitmap_size -1', cmd: C.VERSION, body: caps('{ "migration": { "max_bitmap_size": -1 } }'), errno: 'EINVAL' },
  { name: 'VERSION, twin_socket true', cmd: C.VERSION, body: caps('{ "twin_socket": true }'), errno: 'EINVAL' },
  { name: 'VERSION, twin_socket.supported "yes"', cmd: C.VERSION, body: caps('{ "twin_socket": { "supported": "yes" } }'), errno: 'EINVAL' },
  { name: 'VERSION, write_multiple 1', cmd: C.VERSION, body: caps('{ "write_multiple": 1 }'), errno: 'EINVAL' },
  { name: 'VERSION request carrying an fd', cmd: C.VERSION, body: ver('{}'), fds: 1, errno: 'EINVAL' },
  {
    name: 'VERSION reply, twin fd_index beyond the fds',
    cmd: C.VERSION,
    as: 'client-reply',
    fds: 1,
    body: caps('{ "twin_socket": { "supported": true, "fd_index": 1 } }'),
    errno: 'EINVAL',
  },
  { name: 'VERSION reply, fds without a twin socket', cmd: C.VERSION, as: 'client-reply', fds: 1, body: ver('{}'), errno: 'EINVAL' },

  // ---- DMA_MAP
  { name: 'DMA_MAP, 31 bytes', cmd: C.DMA_MAP, body: zeros(31), errno: 'EINVAL' },
  { name: 'DMA_MAP, argsz 31', cmd: C.DMA_MAP, body: b(u32(31), u32(3), u64(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, flag MMAP (libvfio-user only)', cmd: C.DMA_MAP, body: b(u32(32), u32(4), u64(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, two fds', cmd: C.DMA_MAP, fds: 2, body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, size 0', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0)), errno: 'EINVAL' },
  // The session's pgsizes is the spec default, 4 KiB: what VERSION says is what DMA_MAP takes.
  { name: 'DMA_MAP, address not page aligned', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(0x1800), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, size not whole pages', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(0x1000), u64(0x1800)), errno: 'EINVAL' },
  { name: 'DMA_MAP, range wraps 2^64', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(0), u64(-4096n), u64(0x2000)), errno: 'EINVAL' },
  { name: 'DMA_MAP, file range wraps 2^64', cmd: C.DMA_MAP, body: b(u32(32), u32(3), u64(-1n), u64(0), u64(0x2000)), errno: 'EINVAL' },

  // ---- DMA_UNMAP
  { name: 'DMA_UNMAP, 8 bytes', cmd: C.DMA_UNMAP, body: b(u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, argsz 8', cmd: C.DMA_UNMAP, body: b(u32(8), u32(0), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  {
    name: 'DMA_UNMAP, argsz past max_data_xfer_size',
    cmd: C.DMA_UNMAP,
    body: b(u32((1 << 20) + 8), u32(0), u64(0x1000), u64(0x1000)),
    errno: 'EINVAL',
  },
  { name: 'DMA_UNMAP, flags 4', cmd: C.DMA_UNMAP, body: b(u32(24), u32(4), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, ALL with an address', cmd: C.DMA_UNMAP, body: b(u32(24), u32(2), u64(0x10000), u64(0x1000)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, ALL|GET_DIRTY_BITMAP', cmd: C.DMA_UNMAP, body: b(u32(24), u32(3), u64(0), u64(0)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, range wraps 2^64', cmd: C.DMA_UNMAP, body: b(u32(24), u32(0), u64(-1n), u64(2)), errno: 'EINVAL' },
  { name: 'DMA_UNMAP, GET_DIRTY_BITMAP without the bitmap', cmd: C.DMA_UNMAP, body: b(u32(40), u32(1), u64(0x1000), u64(0x1000)), errno: 'EINVAL' },
  {
    name: 'DMA_UNMAP, dirty bitmap overflowing argsz',
    cmd: C.DMA_UNMAP,
    body: b(u32(40), u32(1), u64(0x1000), u64(0x1000), u64(4096), u64(2n ** 64n - 32n)),
    errno: 'EINVAL',
  },
  {
    name: 'DMA_UNMAP, dirty bitmap (unsupported)',
    cmd: C.DMA_UNMAP,
    body: b(u32(48), u32(1), u64(0x1000), u64(0x1000), u64(4096), u64(8), zeros(8)),
    errno: 'EOPNOTSUPP',
  },
  // SPDK sends its memory fd with an unmap: taken (and closed), so what counts is the range.
  { name: 'DMA_UNMAP with an fd, of nothing mapped', cmd: C.DMA_UNMAP, fds: 1, body: b(u32(24), u32(0), u64(0x1000), u64(0x1000)), errno: 'ENOENT' },

  // ---- info requests
  { name: 'DEVICE_GET_INFO, 8 bytes', cmd: C.DEVICE_GET_INFO, body: b(u32(16), u32(0)), errno: 'EINVAL' },
  { name: 'DEVICE_GET_INFO, argsz 15', cmd: C.DEVICE_GET_INFO, body: b(u32(15), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'DEVICE_GET_INFO with an fd', cmd: C.DEVICE_GET_INFO, fds: 1, body: b(u32(16), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_REGION_INFO, 16 bytes', cmd: C.DEVICE_GET_REGION_INFO, body: b(u32(32), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_REGION_INFO, argsz 31', cmd: C.DEVICE_GET_REGION_INFO, body: b(u32(31), u32(0), u32(0), u32(0), u64(0), u64(0)), errno: 'EINVAL' },
  {
    name: 'GET_REGION_INFO, region 9 of 9',
    cmd: C.DEVICE_GET_REGION_INFO,
    body: b(u32(32), u32(0), u32(9), u32(0), u64(0), u64(0)),
    errno: 'EINVAL',
  },
  { name: 'GET_IRQ_INFO, argsz 8', cmd: C.DEVICE_GET_IRQ_INFO, body: b(u32(8), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_IRQ_INFO, index 5 of 5', cmd: C.DEVICE_GET_IRQ_INFO, body: b(u32(16), u32(0), u32(5), u32(0)), errno: 'EINVAL' },
  { name: 'GET_REGION_IO_FDS, flags 1', cmd: C.DEVICE_GET_REGION_IO_FDS, body: b(u32(64), u32(1), u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'GET_REGION_IO_FDS, count 1', cmd: C.DEVICE_GET_REGION_IO_FDS, body: b(u32(64), u32(0), u32(0), u32(1)), errno: 'EINVAL' },
  { name: 'GET_REGION_IO_FDS, argsz 8', cmd: C.DEVICE_GET_REGION_IO_FDS, body: b(u32(8), u32(0), u32(0), u32(0)), errno: 'EINVAL' },
  {
    name: 'GET_REGION_IO_FDS, argsz past the limit',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    body: b(u32(2 << 20), u32(0), u32(0), u32(0)),
    errno: 'EINVAL',
  },
  { name: 'GET_REGION_IO_FDS, region 20', cmd: C.DEVICE_GET_REGION_IO_FDS, body: b(u32(64), u32(0), u32(20), u32(0)), errno: 'EINVAL' },

  // ---- SET_IRQS
  { name: 'SET_IRQS, 8 bytes', cmd: C.DEVICE_SET_IRQS, body: b(u32(0), u32(0)), errno: 'EINVAL' },
  { name: 'SET_IRQS, argsz 3', cmd: C.DEVICE_SET_IRQS, body: b(u32(3), u32(TRIG_NONE), u32(0), u32(0), u32(1)), errno: 'EINVAL' },
  {
    name: 'SET_IRQS, MASK and UNMASK',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.ACTION_MASK | S.ACTION_UNMASK | S.DATA_NONE, PciIrq.INTX, 0, 1),
    errno: 'EINVAL',
  },
  {
    name: 'SET_IRQS, DATA_NONE and DATA_BOOL',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.ACTION_MASK | S.DATA_NONE | S.DATA_BOOL, PciIrq.INTX, 0, 1),
    errno: 'EINVAL',
  },
  { name: 'SET_IRQS, no action', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.DATA_NONE, PciIrq.INTX, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, no data type', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.ACTION_TRIGGER, PciIrq.INTX, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, unknown flag bit 6', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE | 0x40, PciIrq.INTX, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, index 5 of 5', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, 5, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, start+count past the index', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, PciIrq.MSIX, 15, 2), errno: 'EINVAL' },
  { name: 'SET_IRQS, start past the index', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, PciIrq.MSIX, 16, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, start+count overflows u32', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, PciIrq.MSIX, 0xffffffff, 2), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 0 with start 1', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, PciIrq.MSIX, 1, 0), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 0 with MASK', cmd: C.DEVICE_SET_IRQS, body: irqSet(S.ACTION_MASK | S.DATA_NONE, PciIrq.INTX, 0, 0), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 0 with DATA_EVENTFD', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_EFD, PciIrq.MSIX, 0, 0), errno: 'EINVAL' },
  {
    name: 'SET_IRQS, DATA_BOOL short of count',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.DATA_BOOL | S.ACTION_TRIGGER, PciIrq.MSIX, 0, 3, zeros(2)),
    errno: 'EINVAL',
  },
  {
    name: 'SET_IRQS, DATA_BOOL with an fd',
    cmd: C.DEVICE_SET_IRQS,
    fds: 1,
    body: irqSet(S.DATA_BOOL | S.ACTION_TRIGGER, PciIrq.MSIX, 0, 1, zeros(1)),
    errno: 'EINVAL',
  },
  { name: 'SET_IRQS, DATA_NONE with an fd', cmd: C.DEVICE_SET_IRQS, fds: 1, body: irqSet(TRIG_NONE, PciIrq.MSIX, 0, 1), errno: 'EINVAL' },
  { name: 'SET_IRQS, DATA_NONE with data', cmd: C.DEVICE_SET_IRQS, body: irqSet(TRIG_NONE, PciIrq.MSIX, 0, 1, zeros(4)), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 2 with one fd', cmd: C.DEVICE_SET_IRQS, fds: 1, body: irqSet(TRIG_EFD, PciIrq.MSIX, 0, 2), errno: 'EINVAL' },
  { name: 'SET_IRQS, count 1 with two fds', cmd: C.DEVICE_SET_IRQS, fds: 2, body: irqSet(TRIG_EFD, PciIrq.MSIX, 0, 1), errno: 'EINVAL' },
  {
    name: 'SET_IRQS, MASK on a non-maskable index',
    cmd: C.DEVICE_SET_IRQS,
    body: irqSet(S.ACTION_MASK | S.DATA_NONE, PciIrq.MSIX, 0, 1),
    errno: 'EINVAL',
  },

  // ---- region access
  { name: 'REGION_READ, 12 bytes', cmd: C.REGION_READ, body: b(u64(0), u32(0)), errno: 'EINVAL' },
  { name: 'REGION_READ, count past max_data_xfer_size', cmd: C.REGION_READ, body: access(0, PciRegion.BAR2, (1 << 20) + 1), errno: 'EINVAL' },
  { name: 'REGION_READ with trailing data', cmd: C.REGION_READ, body: access(0, PciRegion.BAR0, 4, zeros(4)), errno: 'EINVAL' },
  { name: 'REGION_READ, region 9 of 9', cmd: C.REGION_READ, body: access(0, 9, 4), errno: 'EINVAL' },
  { name: 'REGION_READ, past the region end', cmd: C.REGION_READ, body: access(4094, PciRegion.BAR0, 4), errno: 'EINVAL' },
  { name: 'REGION_READ, offset 2^63', cmd: C.REGION_READ, body: access(2n ** 63n, PciRegion.BAR0, 4), errno: 'EINVAL' },
  { name: 'REGION_READ, a region the device lacks', cmd: C.REGION_READ, body: access(0, PciRegion.BAR1, 4), errno: 'EINVAL' },
  { name: 'REGION_READ with an fd', cmd: C.REGION_READ, fds: 1, body: access(0, PciRegion.BAR0, 4), errno: 'EINVAL' },
  { name: 'REGION_WRITE, data shorter than count', cmd: C.REGION_WRITE, body: access(0, PciRegion.BAR0, 8, zeros(4)), errno: 'EINVAL' },
  { name: 'REGION_WRITE, data longer than count', cmd: C.REGION_WRITE, body: access(0, PciRegion.BAR0, 2, zeros(4)), errno: 'EINVAL' },
  { name: 'REGION_WRITE, past the region end', cmd: C.REGION_WRITE, body: access(255, PciRegion.CONFIG, 2, zeros(2)), errno: 'EINVAL' },

  // ---- REGION_WRITE_MULTI
  { name: 'WRITE_MULTI, 4 bytes', cmd: C.REGION_WRITE_MULTI, body: zeros(4), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, wr_cnt 201', cmd: C.REGION_WRITE_MULTI, body: b(u64(201), zeros(201 * 24)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, wr_cnt 2^40', cmd: C.REGION_WRITE_MULTI, body: b(u64(2n ** 40n)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, wr_cnt beyond the body', cmd: C.REGION_WRITE_MULTI, body: b(u64(2), access(0, 0, 4), zeros(8)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, a 9-byte write', cmd: C.REGION_WRITE_MULTI, body: b(u64(1), access(0, 0, 9), zeros(8)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, a 0-byte write', cmd: C.REGION_WRITE_MULTI, body: b(u64(1), access(0, 0, 0), zeros(8)), errno: 'EINVAL' },
  { name: 'WRITE_MULTI, a write past its region', cmd: C.REGION_WRITE_MULTI, body: b(u64(1), access(4092, 0, 8), zeros(8)), errno: 'EINVAL' },

  // ---- reset, features, migration
  { name: 'DEVICE_RESET with a body', cmd: C.DEVICE_RESET, body: zeros(4), errno: 'EINVAL' },
  { name: 'DEVICE_RESET with an fd', cmd: C.DEVICE_RESET, fds: 1, body: zeros(0), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, 4 bytes', cmd: C.DEVICE_FEATURE, body: b(u32(8)), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, argsz 4', cmd: C.DEVICE_FEATURE, body: b(u32(4), u32((1 << 16) | 1)), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, no operation', cmd: C.DEVICE_FEATURE, body: b(u32(8), u32(1)), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, GET|SET without PROBE', cmd: C.DEVICE_FEATURE, body: b(u32(16), u32((3 << 16) | 2), zeros(8)), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, unknown bit 19', cmd: C.DEVICE_FEATURE, body: b(u32(8), u32((1 << 19) | (1 << 16) | 1)), errno: 'EINVAL' },
  { name: 'DEVICE_FEATURE, SET with argsz below the request', cmd: C.DEVICE_FEATURE, body: b(u32(8), u32((1 << 17) | 2), zeros(8)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ, 4 bytes', cmd: C.MIG_DATA_READ, body: b(u32(8)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ, size past the limit', cmd: C.MIG_DATA_READ, body: b(u32(8 + (2 << 20)), u32(2 << 20)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ, argsz below 8 + size', cmd: C.MIG_DATA_READ, body: b(u32(100), u32(100)), errno: 'EINVAL' },
  { name: 'MIG_DATA_READ with data', cmd: C.MIG_DATA_READ, body: b(u32(108), u32(100), zeros(4)), errno: 'EINVAL' },
  { name: 'MIG_DATA_WRITE, short of size', cmd: C.MIG_DATA_WRITE, body: b(u32(108), u32(100), zeros(50)), errno: 'EINVAL' },
  { name: 'MIG_DATA_WRITE, argsz below 8 + size', cmd: C.MIG_DATA_WRITE, body: b(u32(8), u32(4), zeros(4)), errno: 'EINVAL' },

  // ---- server → client commands
  { name: 'DMA_READ, 8 bytes', cmd: C.DMA_READ, as: 'client', body: b(u64(0)), errno: 'EINVAL' },
  { name: 'DMA_READ, count past max_data_xfer_size', cmd: C.DMA_READ, as: 'client', body: b(u64(0), u64((1 << 20) + 1)), errno: 'E2BIG' },
  { name: 'DMA_READ, count 2^60', cmd: C.DMA_READ, as: 'client', body: b(u64(0), u64(2n ** 60n)), errno: 'E2BIG' },
  { name: 'DMA_READ with trailing data', cmd: C.DMA_READ, as: 'client', body: b(u64(0), u64(4), zeros(4)), errno: 'EINVAL' },
  { name: 'DMA_READ with an fd', cmd: C.DMA_READ, as: 'client', fds: 1, body: b(u64(0), u64(4)), errno: 'EINVAL' },
  { name: 'DMA_WRITE, data shorter than count', cmd: C.DMA_WRITE, as: 'client', body: b(u64(0), u64(8), zeros(4)), errno: 'EINVAL' },
  { name: 'DMA_WRITE, count past max_data_xfer_size', cmd: C.DMA_WRITE, as: 'client', body: b(u64(0), u64((1 << 20) + 1)), errno: 'E2BIG' },

  // ---- replies a client receives
  { name: 'a command where a reply is expected', cmd: C.DEVICE_RESET, as: 'client-reply', flags: 0, body: zeros(0), errno: 'EINVAL' },
  { name: 'error reply without errno', cmd: C.REGION_READ, as: 'client-reply', flags: REPLY | HeaderFlags.ERROR, body: zeros(0), errno: 'EIO' },
  {
    name: 'error reply EFAULT',
    cmd: C.REGION_READ,
    as: 'client-reply',
    flags: REPLY | HeaderFlags.ERROR,
    errorNo: 14,
    body: zeros(0),
    errno: 'EFAULT',
  },
  {
    name: 'error reply with an errno uvfio does not name',
    cmd: C.REGION_READ,
    as: 'client-reply',
    flags: REPLY | HeaderFlags.ERROR,
    errorNo: 200,
    body: zeros(0),
    errno: 'EIO',
  },
  { name: 'DMA_MAP reply with payload', cmd: C.DMA_MAP, as: 'client-reply', body: zeros(4), errno: 'EINVAL' },
  { name: 'SET_IRQS reply with an fd', cmd: C.DEVICE_SET_IRQS, as: 'client-reply', fds: 1, body: zeros(0), errno: 'EINVAL' },
  { name: 'DMA_UNMAP reply, 8 bytes', cmd: C.DMA_UNMAP, as: 'client-reply', body: zeros(8), errno: 'EINVAL' },
  { name: 'GET_INFO reply, 8 bytes', cmd: C.DEVICE_GET_INFO, as: 'client-reply', body: b(u32(16), u32(0)), errno: 'EINVAL' },
  { name: 'GET_INFO reply, argsz 8', cmd: C.DEVICE_GET_INFO, as: 'client-reply', body: b(u32(8), u32(0), u32(9), u32(5)), errno: 'EINVAL' },
  { name: 'GET_REGION_INFO reply, 16 bytes', cmd: C.DEVICE_GET_REGION_INFO, as: 'client-reply', body: zeros(16), errno: 'EINVAL' },
  { name: 'GET_REGION_INFO reply, argsz 16', cmd: C.DEVICE_GET_REGION_INFO, as: 'client-reply', body: b(u32(16), zeros(28)), errno: 'EINVAL' },
  {
    name: 'GET_IRQ_INFO reply with an fd',
    cmd: C.DEVICE_GET_IRQ_INFO,
    as: 'client-reply',
    fds: 1,
    body: b(u32(16), u32(1), u32(0), u32(1)),
    errno: 'EINVAL',
  },
  { name: 'REGION_READ reply, count and data disagree', cmd: C.REGION_READ, as: 'client-reply', body: access(0, 0, 8, zeros(4)), errno: 'EINVAL' },
  { name: 'REGION_READ reply, count past the limit', cmd: C.REGION_READ, as: 'client-reply', body: access(0, 0, (1 << 20) + 1), errno: 'E2BIG' },
  { name: 'REGION_READ reply, offset beyond 2^53', cmd: C.REGION_READ, as: 'client-reply', body: access(2n ** 60n, 0, 0), errno: 'EOVERFLOW' },
  { name: 'REGION_WRITE reply with data', cmd: C.REGION_WRITE, as: 'client-reply', body: access(0, 0, 4, zeros(4)), errno: 'EINVAL' },
  {
    name: 'GET_REGION_IO_FDS reply, flags 1',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    as: 'client-reply',
    body: b(u32(16), u32(1), u32(0), u32(0)),
    errno: 'EINVAL',
  },
  {
    name: 'GET_REGION_IO_FDS reply, fd index beyond the fds',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    as: 'client-reply',
    fds: 1,
    body: b(u32(56), u32(0), u32(0), u32(1), u64(0), u64(4), u32(1), u32(0), u32(0), u32(0), u64(0)),
    errno: 'EINVAL',
  },
  {
    name: 'GET_REGION_IO_FDS reply, entries smaller than 40 bytes',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    as: 'client-reply',
    fds: 1,
    body: b(u32(55), u32(0), u32(0), u32(1), u64(0), u64(4), u32(0), u32(0), u32(0), u32(0), zeros(7)),
    errno: 'EINVAL',
  },
  {
    name: 'GET_REGION_IO_FDS reply, argsz not a whole number of entries',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    as: 'client-reply',
    fds: 1,
    body: b(u32(97), u32(0), u32(0), u32(2), zeros(81)),
    errno: 'EINVAL',
  },
  {
    name: 'GET_REGION_IO_FDS reply, fds without entries',
    cmd: C.DEVICE_GET_REGION_IO_FDS,
    as: 'client-reply',
    fds: 1,
    body: b(u32(56), u32(0), u32(0), u32(1)),
    errno: 'EINVAL',
  },
  { name: 'WRITE_MULTI reply, 4 bytes', cmd: C.REGION_WRITE_MULTI, as: 'client-reply', body: zeros(4), errno: 'EINVAL' },
  {
    name: 'DEVICE_FEATURE reply, argsz below the reply',
    cmd: C.DEVICE_FEATURE,
    as: 'client-reply',
    body: b(u32(8), u32((1 << 16) | 1), zeros(8)),
    errno: 'EINVAL',
  },
  { name: 'MIG_DATA_READ reply, argsz not 8 + size', cmd: C.MIG_DATA_READ, as: 'client-reply', body: b(u32(100), u32(4), zeros(4)), errno: 'EINVAL' },
  {
    name: 'MIG_DATA_READ reply, data shorter than size',
    cmd: C.MIG_DATA_READ,
    as: 'client-reply',
    body: b(u32(12), u32(4), zeros(2)),
    errno: 'EINVAL',
  },

  // ---- replies a server receives: the device's DMA access fails with EIO
  { name: 'DMA_READ reply, count and data disagree', cmd: C.DMA_READ, as: 'server-reply', body: b(u64(0x10000), u64(4), zeros(2)), errno: 'EIO' },
  { name: 'DMA_READ reply, count past the limit', cmd: C.DMA_READ, as: 'server-reply', body: b(u64(0x10000), u64(2n ** 40n)), errno: 'EIO' },
  { name: 'DMA_READ reply, another address', cmd: C.DMA_READ, as: 'server-reply', body: b(u64(0x20000), u64(4), zeros(4)), errno: 'EIO' },
  { name: 'DMA_WRITE reply, 8 bytes', cmd: C.DMA_WRITE, as: 'server-reply', body: zeros(8), errno: 'EIO' },
];

let bench: Bench;
before(() => {
  bench = startServer();
});
after(() => bench.close());

/** `n` fresh eventfds: real fds for a message to carry. */
function someFds(n: number): EventFd[] {
  return Array.from({ length: n }, () => EventFd.create());
}

/** Sends `c` the way its receiver gets it and resolves with the errno it earned. */
async function run(c: Case): Promise<ErrnoName | undefined> {
  const as = c.as ?? 'server';
  const isReply = as.endsWith('-reply');
  const flags = c.flags ?? (isReply ? REPLY : HeaderFlags.TYPE_COMMAND);
  const message = (msgId: number): Uint8Array => encodeMessage(msgId, c.cmd, flags, c.body, c.errorNo ?? 0);
  const fds = someFds(c.fds ?? 0);
  try {
    switch (as) {
      case 'server':
        return await toServer(
          c,
          message(1),
          fds.map((e) => e.fd),
        );
      case 'client':
        return await toClient(
          message(1),
          fds.map((e) => e.fd),
        );
      case 'client-reply':
        return await replyToClient(
          c,
          message,
          fds.map((e) => e.fd),
        );
      case 'server-reply':
        return await replyToServer(
          c,
          message,
          fds.map((e) => e.fd),
        );
    }
  } finally {
    for (const e of fds) e.close();
  }
}

/** The errno of an error reply to msg_id `id`. */
function errnoOf(reply: Frame | null, id: number): ErrnoName | undefined {
  assert.ok(reply !== null, 'an error reply, not a hang-up');
  closeFds(reply.fds);
  assert.equal(reply.msgId, id);
  assert.ok(hasErrorFlag(reply.flags), 'an error reply');
  return VfioError.fromErrno(reply.errorNo, 'the reply').code;
}

/**
 * A peer of a new session on the bench device, once every earlier one is
 * released: a session's client slot (device-clients, 8) comes back only at
 * the end of its teardown (the device file closed, its client's command
 * line read), some turns of the loop after its transport closed, and a run
 * of cases each ending its session could otherwise find all 8 still held.
 */
async function attach(): Promise<MemoryPeer> {
  await until(() => bench.server.clients(bench.device).length === 0, 'the sessions of earlier cases to be released');
  return MemoryPeer.attached(bench.server, bench.device);
}

/** A command to a real session: its error reply; after VERSION the session still serves, after a failed VERSION it ends. */
async function toServer(c: Case, message: Uint8Array, fds: number[]): Promise<ErrnoName | undefined> {
  const peer = await attach();
  try {
    if (c.cmd !== C.VERSION) await peer.negotiate();
    peer.write(message, fds);
    const errno = errnoOf(await peer.next(), 1);
    if (c.cmd === C.VERSION) {
      assert.equal(await peer.next(), null, 'a failed handshake ends the session');
    } else {
      peer.write(encodeDeviceInfoRequest(2));
      const probe = await peer.next();
      assert.ok(probe !== null && probe.msgId === 2 && !hasErrorFlag(probe.flags), 'the session still serves');
    }
    return errno;
  } finally {
    peer.close();
    peer.dropFrames();
  }
}

/** A real client over memory, its VERSION answered by `answer` (default: a good 0.2 reply). */
async function client(answer?: (version: Frame, peer: MemoryPeer) => void): Promise<{ peer: MemoryPeer; connecting: Promise<VfioUserClient> }> {
  const peer = new MemoryPeer();
  const connecting = VfioUserClient.over(peer.transport, { timeoutMs: 2000 });
  const version = (await peer.next())!;
  if (answer !== undefined) {
    answer(version, peer);
  } else {
    const caps = { maxMsgFds: 16, maxDataXferSize: 1 << 20 };
    peer.write(encodeVersionReply(version.msgId, { major: 0, minor: 2, capabilities: caps }));
  }
  return { peer, connecting };
}

/** A command from the server to a real client: the client's error reply. */
async function toClient(message: Uint8Array, fds: number[]): Promise<ErrnoName | undefined> {
  const { peer, connecting } = await client();
  const c = await connecting;
  try {
    peer.write(message, fds);
    return errnoOf(await peer.next(), 1);
  } finally {
    c.close();
    peer.dropFrames();
  }
}

/** What a client sends for each command whose reply the corpus garbles. */
const CALLS: Record<number, (c: VfioUserClient) => Promise<unknown>> = {
  [C.DMA_MAP]: (c) => c.dmaMapMessages(0x1000, new Uint8Array(4096)),
  [C.DMA_UNMAP]: (c) => c.dmaUnmap(0x1000, 0x1000),
  [C.DEVICE_GET_INFO]: (c) => c.getDeviceInfo(),
  [C.DEVICE_GET_REGION_INFO]: (c) => c.getRegionInfo(PciRegion.BAR0),
  [C.DEVICE_GET_REGION_IO_FDS]: (c) => c.getRegionIoFds(PciRegion.BAR0),
  [C.DEVICE_GET_IRQ_INFO]: (c) => c.getIrqInfo(PciIrq.INTX),
  [C.DEVICE_SET_IRQS]: (c) => c.setIrqs(PciIrq.MSIX, 0, 1, 'trigger', 'none'),
  [C.REGION_READ]: (c) => c.regionRead(PciRegion.BAR0, 0, 4),
  [C.REGION_WRITE]: (c) => c.regionWrite(PciRegion.BAR0, 0, new Uint8Array(4)),
  [C.REGION_WRITE_MULTI]: (c) => c.regionWriteMulti([{ region: PciRegion.BAR0, offset: 0, data: new Uint8Array(4) }]),
  [C.DEVICE_FEATURE]: (c) => c.feature(1, 'get'),
  [C.MIG_DATA_READ]: (c) => c.migrationDataRead(4),
};

/** A reply to a real client: the errno its call (or its VERSION) fails with. */
async function replyToClient(c: Case, message: (id: number) => Uint8Array, fds: number[]): Promise<ErrnoName | undefined> {
  if (c.cmd === C.VERSION) {
    const { peer, connecting } = await client((version, p) => p.write(message(version.msgId), fds));
    try {
      await connecting.then((cl) => cl.close());
      return undefined;
    } catch (err) {
      return isVfioError(err) ? err.code : undefined;
    } finally {
      peer.dropFrames();
    }
  }
  const { peer, connecting } = await client();
  const cl = await connecting;
  try {
    if (!hasReplyType(c)) {
      // Not a reply at all: the client answers it as a command it does not serve.
      peer.write(message(1), fds);
      return errnoOf(await peer.next(), 1);
    }
    const call = CALLS[c.cmd]!(cl).then(
      () => undefined,
      (err: unknown) => (isVfioError(err) ? err.code : undefined),
    );
    const request = (await peer.next())!;
    assert.equal(request.cmd, c.cmd);
    closeFds(request.fds);
    peer.write(message(request.msgId), fds);
    return await call;
  } finally {
    cl.close();
    peer.dropFrames();
  }
}

function hasReplyType(c: Case): boolean {
  return ((c.flags ?? REPLY) & HeaderFlags.TYPE_MASK) === REPLY;
}

/**
 * A reply to the server's own DMA message: a session maps client memory
 * without an fd, then has the device read (or write) it; the peer answers
 * the server's DMA message with the case's reply, and the access that
 * needed it fails with the errno returned.
 */
async function replyToServer(c: Case, message: (id: number) => Uint8Array, fds: number[]): Promise<ErrnoName | undefined> {
  const peer = await attach();
  try {
    await peer.negotiate();
    peer.write(encodeDmaMap(1, { readable: true, writable: true, offset: 0n, address: 0x10000n, size: 4096n }));
    const reg = (offset: number, value: number): Uint8Array => {
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, BigInt(value), true);
      return encodeRegionWrite(2, offset, PciRegion.BAR0, v);
    };
    peer.write(reg(REG_IOVA, 0x10000));
    peer.write(reg(REG_LEN, 4));
    for (let i = 0; i < 3; i++) assert.equal(hasErrorFlag((await peer.next())!.flags), false);
    const doorbell = c.cmd === C.DMA_READ ? DOORBELL_DMA_READ : DOORBELL_DMA_WRITE;
    peer.write(encodeRegionWrite(3, doorbell, PciRegion.BAR0, new Uint8Array(8)));
    const dma = (await peer.next())!;
    assert.equal(dma.cmd, c.cmd, 'the server asked the client for DMA');
    peer.write(message(dma.msgId), fds);
    return errnoOf(await peer.next(), 3);
  } finally {
    peer.close();
    peer.dropFrames();
  }
}

describe('malformed messages', () => {
  it(`has a corpus of ${cases.length} cases with distinct names`, () => {
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
    assert.ok(cases.length >= 100);
  });
  for (const c of cases) {
    it(`${c.name} → ${c.errno}`, async () => {
      assert.equal(await run(c), c.errno);
    });
  }
});
