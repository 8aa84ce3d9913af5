/**
 * Encoders for every message, both directions. Each `encode…` returns one
 * whole message (header included) in a fresh array. The hot path has
 * `write…` variants that fill a caller's reusable buffer and return the byte
 * count, so that e.g. a REGION_READ reply is written as header + access
 * struct, and the device reads its data straight into the buffer behind them.
 *
 * Values come from uvfio's own code, so a value that cannot be encoded (a
 * count above u32, a negative size) is a bug: RangeError, not VfioError.
 */
import { ERRNO, type ErrnoName } from '../base/errors.js';
import type { DeviceInfo, IrqInfo, RegionInfo } from '../base/uapi.js';
import { DmaProt, FeatureFlags, IrqSetFlags } from '../base/uapi.js';
import { put32, put64 } from './buffer-writer.js';
import { type DmaLayout, dmaDataOffset } from './context.js';
import { HEADER_SIZE, writeHeader } from './header.js';
import type { DeviceFeatureMessage, DmaUnmapRequest, SetIrqsMessage, SubRegionIoFd, VersionMessage, WriteMultiEntry } from './messages.js';
import { Command, DmaUnmapFlags, HeaderFlags, Size, WRITE_MULTI_DATA_MAX, WRITE_MULTI_MAX_ENTRIES } from './protocol.js';
import { regionInfoReplyBody } from './region-info.js';
import { versionBody } from './version.js';

/** Header flags options of a command. */
export interface CommandOptions {
  /** ask the peer not to reply (posted writes) */
  noReply?: boolean;
}

function u32Arg(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`${what} ${v} is not a u32`);
  return v;
}

function commandFlags(opts: CommandOptions | undefined): number {
  return HeaderFlags.TYPE_COMMAND | (opts?.noReply === true ? HeaderFlags.NO_REPLY : 0);
}

/** A message of `bodyLen` bytes with its header written; the body is zeroed. */
function alloc(msgId: number, cmd: number, flags: number, bodyLen: number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + bodyLen);
  writeHeader(b, 0, msgId, cmd, b.length, flags);
  return b;
}

function command(msgId: number, cmd: number, bodyLen: number, opts?: CommandOptions): Uint8Array {
  return alloc(msgId, cmd, commandFlags(opts), bodyLen);
}

function reply(msgId: number, cmd: number, bodyLen: number): Uint8Array {
  return alloc(msgId, cmd, HeaderFlags.TYPE_REPLY, bodyLen);
}

/** Any message from a ready body (for commands the codec has no helper for, and tests). */
export function encodeMessage(msgId: number, cmd: number, flags: number, body: Uint8Array = new Uint8Array(0), errorNo = 0): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + body.length);
  writeHeader(b, 0, msgId, cmd, b.length, flags, errorNo);
  b.set(body, HEADER_SIZE);
  return b;
}

// ---------------------------------------------------------------- generic replies

/** Writes a header-only success reply into `buf`; returns 16. */
export function writeEmptyReply(buf: Uint8Array, msgId: number, cmd: number): number {
  writeHeader(buf, 0, msgId, cmd, HEADER_SIZE, HeaderFlags.TYPE_REPLY);
  return HEADER_SIZE;
}

/** Header-only success reply (DMA_MAP, SET_IRQS, DEVICE_RESET, MIG_DATA_WRITE). */
export function encodeEmptyReply(msgId: number, cmd: number): Uint8Array {
  return reply(msgId, cmd, 0);
}

/** Writes an error reply (header only, ERROR flag, errno) into `buf`; returns 16. */
export function writeErrorReply(buf: Uint8Array, msgId: number, cmd: number, errno: number | ErrnoName): number {
  const n = typeof errno === 'number' ? errno : ERRNO[errno];
  writeHeader(buf, 0, msgId, cmd, HEADER_SIZE, HeaderFlags.TYPE_REPLY | HeaderFlags.ERROR, n);
  return HEADER_SIZE;
}

/** Error reply: the spec allows nothing after the header. */
export function encodeErrorReply(msgId: number, cmd: number, errno: number | ErrnoName): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  writeErrorReply(b, msgId, cmd, errno);
  return b;
}

// ---------------------------------------------------------------- VERSION

/** VERSION request (client → server). */
export function encodeVersionCommand(msgId: number, v: VersionMessage): Uint8Array {
  return encodeMessage(msgId, Command.VERSION, HeaderFlags.TYPE_COMMAND, versionBody(v));
}

/** VERSION reply; send the twin socket fd alongside when `twinSocket.fdIndex` is set. */
export function encodeVersionReply(msgId: number, v: VersionMessage): Uint8Array {
  return encodeMessage(msgId, Command.VERSION, HeaderFlags.TYPE_REPLY, versionBody(v));
}

// ---------------------------------------------------------------- DMA map / unmap

/** DMA_MAP request; send the backing fd alongside when there is one. */
export function encodeDmaMap(msgId: number, m: { readable: boolean; writable: boolean; offset: bigint; address: bigint; size: bigint }): Uint8Array {
  const b = command(msgId, Command.DMA_MAP, Size.DMA_MAP);
  const o = HEADER_SIZE;
  put32(b, o, Size.DMA_MAP);
  put32(b, o + 4, (m.readable ? DmaProt.READ : 0) | (m.writable ? DmaProt.WRITE : 0));
  put64(b, o + 8, m.offset);
  put64(b, o + 16, m.address);
  put64(b, o + 24, m.size);
  return b;
}

function unmapBody(b: Uint8Array, u: { all?: boolean; address: bigint; size: bigint }): void {
  const o = HEADER_SIZE;
  put32(b, o, Size.DMA_UNMAP);
  put32(b, o + 4, u.all === true ? DmaUnmapFlags.ALL : 0);
  put64(b, o + 8, u.all === true ? 0n : u.address);
  put64(b, o + 16, u.all === true ? 0n : u.size);
}

/** DMA_UNMAP request (`all` unmaps everything). */
export function encodeDmaUnmap(msgId: number, u: { all?: boolean; address: bigint; size: bigint }): Uint8Array {
  const b = command(msgId, Command.DMA_UNMAP, Size.DMA_UNMAP);
  unmapBody(b, u);
  return b;
}

/** DMA_UNMAP reply: the request echoed, as the spec asks. */
export function encodeDmaUnmapReply(msgId: number, u: DmaUnmapRequest): Uint8Array {
  const b = reply(msgId, Command.DMA_UNMAP, Size.DMA_UNMAP);
  unmapBody(b, u);
  return b;
}

// ---------------------------------------------------------------- info

function infoRequest(msgId: number, cmd: number, size: number, argsz: number, index: number): Uint8Array {
  const b = command(msgId, cmd, size);
  put32(b, HEADER_SIZE, u32Arg(argsz, 'argsz'));
  put32(b, HEADER_SIZE + 8, u32Arg(index, 'index'));
  return b;
}

/** DEVICE_GET_INFO request. */
export function encodeDeviceInfoRequest(msgId: number, argsz: number = Size.DEVICE_INFO): Uint8Array {
  const b = command(msgId, Command.DEVICE_GET_INFO, Size.DEVICE_INFO);
  put32(b, HEADER_SIZE, u32Arg(argsz, 'argsz'));
  return b;
}

/** DEVICE_GET_INFO reply. */
export function encodeDeviceInfoReply(msgId: number, info: DeviceInfo): Uint8Array {
  const b = reply(msgId, Command.DEVICE_GET_INFO, Size.DEVICE_INFO);
  const o = HEADER_SIZE;
  put32(b, o, Size.DEVICE_INFO);
  put32(b, o + 4, info.flags);
  put32(b, o + 8, u32Arg(info.numRegions, 'numRegions'));
  put32(b, o + 12, u32Arg(info.numIrqs, 'numIrqs'));
  return b;
}

/** DEVICE_GET_REGION_INFO request; argsz bounds the reply (struct + caps). */
export function encodeRegionInfoRequest(msgId: number, index: number, argsz: number = Size.REGION_INFO): Uint8Array {
  return infoRequest(msgId, Command.DEVICE_GET_REGION_INFO, Size.REGION_INFO, argsz, index);
}

/**
 * DEVICE_GET_REGION_INFO reply for `info`, cut to the client's argsz (see
 * region-info.ts). `sendFd` says whether the region's mmap fd goes with it.
 */
export function encodeRegionInfoReply(msgId: number, info: RegionInfo, clientArgsz: number): { message: Uint8Array; sendFd: boolean } {
  const { body, sendFd } = regionInfoReplyBody(info, clientArgsz);
  return { message: encodeMessage(msgId, Command.DEVICE_GET_REGION_INFO, HeaderFlags.TYPE_REPLY, body), sendFd };
}

/** DEVICE_GET_IRQ_INFO request. */
export function encodeIrqInfoRequest(msgId: number, index: number, argsz: number = Size.IRQ_INFO): Uint8Array {
  return infoRequest(msgId, Command.DEVICE_GET_IRQ_INFO, Size.IRQ_INFO, argsz, index);
}

/** DEVICE_GET_IRQ_INFO reply. */
export function encodeIrqInfoReply(msgId: number, info: IrqInfo): Uint8Array {
  const b = reply(msgId, Command.DEVICE_GET_IRQ_INFO, Size.IRQ_INFO);
  const o = HEADER_SIZE;
  put32(b, o, Size.IRQ_INFO);
  put32(b, o + 4, info.flags);
  put32(b, o + 8, u32Arg(info.index, 'index'));
  put32(b, o + 12, u32Arg(info.count, 'count'));
  return b;
}

/** DEVICE_GET_REGION_IO_FDS request. */
export function encodeRegionIoFdsRequest(msgId: number, index: number, argsz: number): Uint8Array {
  return infoRequest(msgId, Command.DEVICE_GET_REGION_IO_FDS, Size.REGION_IO_FDS, argsz, index);
}

/**
 * DEVICE_GET_REGION_IO_FDS reply in the spec's 40-byte entry layout. The
 * entries are included only when the client's argsz has room for all of
 * them; send `reply.fds` alongside exactly when `entriesIncluded`.
 */
export function encodeRegionIoFdsReply(
  msgId: number,
  r: { index: number; subRegions: readonly SubRegionIoFd[] },
  clientArgsz: number,
): { message: Uint8Array; entriesIncluded: boolean } {
  const full = Size.REGION_IO_FDS + r.subRegions.length * Size.SUB_REGION_IO_FD;
  const included = r.subRegions.length > 0 && clientArgsz >= full;
  const b = reply(msgId, Command.DEVICE_GET_REGION_IO_FDS, included ? full : Size.REGION_IO_FDS);
  const o = HEADER_SIZE;
  put32(b, o, full);
  put32(b, o + 4, 0);
  put32(b, o + 8, u32Arg(r.index, 'index'));
  put32(b, o + 12, r.subRegions.length);
  if (included) {
    let e = o + Size.REGION_IO_FDS;
    for (const s of r.subRegions) {
      put64(b, e, s.offset);
      put64(b, e + 8, s.size);
      put32(b, e + 16, s.fdIndex);
      put32(b, e + 20, s.type);
      put32(b, e + 24, s.flags);
      put32(b, e + 28, s.aux);
      put64(b, e + 32, s.datamatch);
      e += Size.SUB_REGION_IO_FD;
    }
  }
  return { message: b, entriesIncluded: included };
}

// ---------------------------------------------------------------- SET_IRQS

const ACTION_FLAG = {
  mask: IrqSetFlags.ACTION_MASK,
  unmask: IrqSetFlags.ACTION_UNMASK,
  trigger: IrqSetFlags.ACTION_TRIGGER,
} as const;

/**
 * DEVICE_SET_IRQS request. For data 'eventfd' send `req.fds` alongside (or
 * none, to de-assign). argsz counts the bool array, like the kernel's.
 */
export function encodeSetIrqs(
  msgId: number,
  req: Pick<SetIrqsMessage, 'index' | 'start' | 'count' | 'action'> &
    ({ data: 'none' } | { data: 'bool'; values: readonly boolean[] } | { data: 'eventfd' }),
): Uint8Array {
  const extra = req.data === 'bool' ? req.values.length : 0;
  if (req.data === 'bool' && req.values.length !== req.count) {
    throw new RangeError(`SET_IRQS: ${req.values.length} bools for count ${req.count}`);
  }
  const dataFlag = req.data === 'none' ? IrqSetFlags.DATA_NONE : req.data === 'bool' ? IrqSetFlags.DATA_BOOL : IrqSetFlags.DATA_EVENTFD;
  const b = command(msgId, Command.DEVICE_SET_IRQS, Size.IRQ_SET + extra);
  const o = HEADER_SIZE;
  put32(b, o, Size.IRQ_SET + extra);
  put32(b, o + 4, dataFlag | ACTION_FLAG[req.action]);
  put32(b, o + 8, u32Arg(req.index, 'index'));
  put32(b, o + 12, u32Arg(req.start, 'start'));
  put32(b, o + 16, u32Arg(req.count, 'count'));
  if (req.data === 'bool') {
    for (let i = 0; i < req.values.length; i++) b[o + Size.IRQ_SET + i] = req.values[i] === true ? 1 : 0;
  }
  return b;
}

// ---------------------------------------------------------------- region access

function writeAccess(buf: Uint8Array, o: number, offset: number, region: number, count: number): void {
  put64(buf, o, offset);
  put32(buf, o + 8, u32Arg(region, 'region'));
  put32(buf, o + 12, u32Arg(count, 'count'));
}

/** REGION_READ request. */
export function encodeRegionRead(msgId: number, offset: number, region: number, count: number): Uint8Array {
  const b = command(msgId, Command.REGION_READ, Size.REGION_ACCESS);
  writeAccess(b, HEADER_SIZE, offset, region, count);
  return b;
}

/** REGION_WRITE request carrying `data` (noReply for a posted write). */
export function encodeRegionWrite(msgId: number, offset: number, region: number, data: Uint8Array, opts?: CommandOptions): Uint8Array {
  const b = command(msgId, Command.REGION_WRITE, Size.REGION_ACCESS + data.length, opts);
  writeAccess(b, HEADER_SIZE, offset, region, data.length);
  b.set(data, HEADER_SIZE + Size.REGION_ACCESS);
  return b;
}

/**
 * Hot path: writes the header and access struct of a REGION_READ reply of
 * `count` bytes into `buf` and returns 32, the offset where the data goes.
 * The whole message is `32 + count` bytes: `buf` holds them all, or only the
 * 32 when the data is sent after it from elsewhere.
 */
export function writeRegionReadReplyHeader(buf: Uint8Array, msgId: number, offset: number, region: number, count: number): number {
  const o = writeHeader(buf, 0, msgId, Command.REGION_READ, HEADER_SIZE + Size.REGION_ACCESS + count, HeaderFlags.TYPE_REPLY);
  writeAccess(buf, o, offset, region, count);
  return o + Size.REGION_ACCESS;
}

/** REGION_READ reply carrying `data`. */
export function encodeRegionReadReply(msgId: number, offset: number, region: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + Size.REGION_ACCESS + data.length);
  b.set(data, writeRegionReadReplyHeader(b, msgId, offset, region, data.length));
  return b;
}

/** Hot path: writes a whole REGION_WRITE reply (32 bytes) into `buf`; returns 32. */
export function writeRegionWriteReply(buf: Uint8Array, msgId: number, offset: number, region: number, count: number): number {
  const o = writeHeader(buf, 0, msgId, Command.REGION_WRITE, HEADER_SIZE + Size.REGION_ACCESS, HeaderFlags.TYPE_REPLY);
  writeAccess(buf, o, offset, region, count);
  return o + Size.REGION_ACCESS;
}

/** REGION_WRITE reply. */
export function encodeRegionWriteReply(msgId: number, offset: number, region: number, count: number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + Size.REGION_ACCESS);
  writeRegionWriteReply(b, msgId, offset, region, count);
  return b;
}

/** REGION_WRITE_MULTI request (QEMU sends it with NO_REPLY). */
export function encodeWriteMulti(msgId: number, entries: readonly Omit<WriteMultiEntry, 'count'>[], opts?: CommandOptions): Uint8Array {
  if (entries.length > WRITE_MULTI_MAX_ENTRIES) throw new RangeError(`WRITE_MULTI: ${entries.length} entries, at most ${WRITE_MULTI_MAX_ENTRIES}`);
  const b = command(msgId, Command.REGION_WRITE_MULTI, Size.WRITE_MULTI_COUNT + entries.length * Size.WRITE_MULTI_ENTRY, opts);
  let o = HEADER_SIZE;
  put64(b, o, entries.length);
  o += Size.WRITE_MULTI_COUNT;
  for (const e of entries) {
    if (e.data.length === 0 || e.data.length > WRITE_MULTI_DATA_MAX) throw new RangeError(`WRITE_MULTI: a write of ${e.data.length} bytes`);
    writeAccess(b, o, e.offset, e.region, e.data.length);
    b.set(e.data, o + 16);
    o += Size.WRITE_MULTI_ENTRY;
  }
  return b;
}

/** REGION_WRITE_MULTI reply: the number of writes done. */
export function encodeWriteMultiReply(msgId: number, done: number): Uint8Array {
  const b = reply(msgId, Command.REGION_WRITE_MULTI, Size.WRITE_MULTI_COUNT);
  put64(b, HEADER_SIZE, done);
  return b;
}

// ---------------------------------------------------------------- DMA access (server → client)

function writeDmaAccess(buf: Uint8Array, o: number, address: bigint, count: number, layout: DmaLayout | undefined): void {
  put64(buf, o, address);
  // 'qemu' declares count as u32; the 4 bytes after it are where its data starts.
  if (layout === 'qemu') put32(buf, o + 8, u32Arg(count, 'count'));
  else put64(buf, o + 8, count);
}

/** DMA_READ request (server → client). */
export function encodeDmaRead(msgId: number, address: bigint, count: number, layout?: DmaLayout): Uint8Array {
  const b = command(msgId, Command.DMA_READ, Size.DMA_ACCESS);
  writeDmaAccess(b, HEADER_SIZE, address, count, layout);
  return b;
}

/** DMA_WRITE request (server → client) carrying `data`. */
export function encodeDmaWrite(msgId: number, address: bigint, data: Uint8Array, layout?: DmaLayout, opts?: CommandOptions): Uint8Array {
  const b = command(msgId, Command.DMA_WRITE, Size.DMA_ACCESS + data.length, opts);
  writeDmaAccess(b, HEADER_SIZE, address, data.length, layout);
  b.set(data, HEADER_SIZE + dmaDataOffset(layout));
  return b;
}

/**
 * Hot path (client side): writes the header and access struct of a DMA_READ
 * reply of `count` bytes into `buf`; returns the offset where the data goes.
 * The whole message is `32 + count` bytes in either layout.
 */
export function writeDmaReadReplyHeader(buf: Uint8Array, msgId: number, address: bigint, count: number, layout?: DmaLayout): number {
  const o = writeHeader(buf, 0, msgId, Command.DMA_READ, HEADER_SIZE + Size.DMA_ACCESS + count, HeaderFlags.TYPE_REPLY);
  writeDmaAccess(buf, o, address, count, layout);
  if (layout === 'qemu') buf.fill(0, o + Size.DMA_ACCESS + count - 4, o + Size.DMA_ACCESS + count);
  return o + dmaDataOffset(layout);
}

/** DMA_READ reply carrying `data`. */
export function encodeDmaReadReply(msgId: number, address: bigint, data: Uint8Array, layout?: DmaLayout): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + Size.DMA_ACCESS + data.length);
  b.set(data, writeDmaReadReplyHeader(b, msgId, address, data.length, layout));
  return b;
}

/** DMA_WRITE reply: address and u64 count (libvfio-user's shape; a 12-byte reader sees the same). */
export function encodeDmaWriteReply(msgId: number, address: bigint, count: number): Uint8Array {
  const b = reply(msgId, Command.DMA_WRITE, Size.DMA_ACCESS);
  put64(b, HEADER_SIZE, address);
  put64(b, HEADER_SIZE + 8, count);
  return b;
}

// ---------------------------------------------------------------- reset, features, migration

/** DEVICE_RESET request. */
export function encodeDeviceReset(msgId: number): Uint8Array {
  return command(msgId, Command.DEVICE_RESET, 0);
}

function featureFlags(f: Pick<DeviceFeatureMessage, 'feature' | 'get' | 'set' | 'probe'>): number {
  if (!Number.isInteger(f.feature) || f.feature < 0 || f.feature > FeatureFlags.MASK) {
    throw new RangeError(`feature ${f.feature} is not a 16-bit index`);
  }
  return (f.feature | (f.get ? FeatureFlags.GET : 0) | (f.set ? FeatureFlags.SET : 0) | (f.probe ? FeatureFlags.PROBE : 0)) >>> 0;
}

function feature(
  msgId: number,
  type: number,
  argsz: number,
  f: Pick<DeviceFeatureMessage, 'feature' | 'get' | 'set' | 'probe' | 'data'>,
): Uint8Array {
  const b = alloc(msgId, Command.DEVICE_FEATURE, type, Size.DEVICE_FEATURE + f.data.length);
  put32(b, HEADER_SIZE, u32Arg(argsz, 'argsz'));
  put32(b, HEADER_SIZE + 4, featureFlags(f));
  b.set(f.data, HEADER_SIZE + Size.DEVICE_FEATURE);
  return b;
}

/**
 * DEVICE_FEATURE request. `argsz` defaults to the request's own size; for
 * GET, pass 8 + the size of the answer expected.
 */
export function encodeDeviceFeature(
  msgId: number,
  f: Pick<DeviceFeatureMessage, 'feature' | 'get' | 'set' | 'probe' | 'data'> & { argsz?: number },
): Uint8Array {
  return feature(msgId, HeaderFlags.TYPE_COMMAND, f.argsz ?? Size.DEVICE_FEATURE + f.data.length, f);
}

/** DEVICE_FEATURE reply: argsz is the reply's own size (the spec: data length added for GET). */
export function encodeDeviceFeatureReply(msgId: number, f: Pick<DeviceFeatureMessage, 'feature' | 'get' | 'set' | 'probe' | 'data'>): Uint8Array {
  return feature(msgId, HeaderFlags.TYPE_REPLY, Size.DEVICE_FEATURE + f.data.length, f);
}

/** MIG_DATA_READ request for up to `size` bytes. */
export function encodeMigDataRead(msgId: number, size: number): Uint8Array {
  const b = command(msgId, Command.MIG_DATA_READ, Size.MIG_DATA);
  put32(b, HEADER_SIZE, u32Arg(Size.MIG_DATA + size, 'argsz'));
  put32(b, HEADER_SIZE + 4, u32Arg(size, 'size'));
  return b;
}

// MIG_DATA_READ reply and MIG_DATA_WRITE request share {argsz = 8 + size, size, data}.
function migData(msgId: number, cmd: number, type: number, data: Uint8Array): Uint8Array {
  const b = alloc(msgId, cmd, type, Size.MIG_DATA + data.length);
  put32(b, HEADER_SIZE, u32Arg(Size.MIG_DATA + data.length, 'argsz'));
  put32(b, HEADER_SIZE + 4, data.length);
  b.set(data, HEADER_SIZE + Size.MIG_DATA);
  return b;
}

/** MIG_DATA_READ reply carrying `data` (shorter than asked: no more data). */
export function encodeMigDataReadReply(msgId: number, data: Uint8Array): Uint8Array {
  return migData(msgId, Command.MIG_DATA_READ, HeaderFlags.TYPE_REPLY, data);
}

/** MIG_DATA_WRITE request carrying `data` (argsz as libvfio-user wants it: 8 + size). */
export function encodeMigDataWrite(msgId: number, data: Uint8Array): Uint8Array {
  return migData(msgId, Command.MIG_DATA_WRITE, HeaderFlags.TYPE_COMMAND, data);
}
