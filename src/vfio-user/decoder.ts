/**
 * Decoders for command messages, both directions: what a server receives
 * from a client (VERSION … MIG_DATA_WRITE) and what a client receives from a
 * server (DMA_READ, DMA_WRITE). Each takes the body and the fds of one
 * message and returns a typed object or throws a VfioError whose errno is
 * the one to put in the error reply.
 *
 * Decoders never take ownership of fds: on success the returned object names
 * the ones it uses, on failure the caller closes them all. A command that
 * has no use for fds is refused (EINVAL) when it carries some, so that no fd
 * is kept by accident.
 *
 * Errnos follow libvfio-user (EINVAL for nearly every malformed request), and
 * QEMU for the client side (E2BIG for a DMA count above max_data_xfer_size).
 */
import { VfioError } from '../base/errors.js';
import { DmaProt, FeatureFlags, IrqInfoFlags, IrqSetFlags } from '../base/uapi.js';
import { u32, u64, u64n } from './buffer-reader.js';
import { type DecodeContext, dmaDataOffset, maxXfer } from './context.js';
import { exactLength, malformed, refuseFds, requireBytes } from './malformed.js';
import type {
  DirtyPagesRequest,
  DmaRwMessage,
  DmaMapRequest,
  DmaUnmapRequest,
  DeviceFeatureMessage,
  InfoRequest,
  IrqAction,
  MigData,
  RegionAccess,
  RegionIoFdsRequest,
  SetIrqsMessage,
  VersionMessage,
  WriteMultiEntry,
} from './messages.js';
import { Command, commandName, DirtyPagesFlags, DmaUnmapFlags, Size, WRITE_MULTI_DATA_MAX, WRITE_MULTI_MAX_ENTRIES } from './protocol.js';
import { decodeVersion } from './version.js';

const U64_MAX = (1n << 64n) - 1n;
const NO_DATA = new Uint8Array(0);

const invalid = malformed;
const noFds = refuseFds;

function argszAtLeast(cmd: number, argsz: number, min: number): void {
  if (argsz < min) throw invalid(cmd, `argsz ${argsz} is below the minimum ${min}`);
}

// argsz also sizes the reply, which must fit in one message.
function argszWithin(cmd: number, argsz: number, min: number, ctx: DecodeContext | undefined): void {
  argszAtLeast(cmd, argsz, min);
  if (argsz > maxXfer(ctx)) throw invalid(cmd, `argsz ${argsz} exceeds max_data_xfer_size`);
}

function checkRegionRange(cmd: number, ctx: DecodeContext | undefined, region: number, offset: number, count: number): void {
  if (offset < 0) throw invalid(cmd, `offset beyond 2^53 is outside every region`);
  const dev = ctx?.device;
  if (dev === undefined) return;
  if (region >= dev.numRegions) throw invalid(cmd, `region ${region} does not exist (the device has ${dev.numRegions})`);
  const size = dev.regionSize(region);
  if (offset + count > size) {
    throw invalid(cmd, `access [${offset}, +${count}) exceeds region ${region} of ${size} bytes`);
  }
}

// ---------------------------------------------------------------- VERSION, DMA map

/** VERSION request (see version.ts for the JSON rules). */
export function decodeVersionCommand(body: Uint8Array, fds: readonly number[]): VersionMessage {
  return decodeVersion(body, fds, 'command');
}

/**
 * DMA_MAP: at most one fd (the memory to mmap); flags READ/WRITE only; the
 * address and size whole pages of the context's dmaPageSize.
 */
export function decodeDmaMap(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): DmaMapRequest {
  const cmd = Command.DMA_MAP;
  requireBytes(cmd, body, 0, Size.DMA_MAP);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  argszAtLeast(cmd, argsz, Size.DMA_MAP);
  if ((flags & ~(DmaProt.READ | DmaProt.WRITE)) !== 0) throw invalid(cmd, `unknown flags ${hex(flags)}`);
  if (fds.length > 1) throw invalid(cmd, `carries ${fds.length} fds, at most 1 is allowed`);
  const offset = u64(body, 8);
  const address = u64(body, 16);
  const size = u64(body, 24);
  if (size === 0n) throw invalid(cmd, 'size is 0');
  if (address + size - 1n > U64_MAX) throw invalid(cmd, `[${hex(address)}, +${hex(size)}) wraps around 2^64`);
  if (offset + size - 1n > U64_MAX) throw invalid(cmd, `file range at ${hex(offset)} of ${hex(size)} wraps around 2^64`);
  const page = BigInt(ctx?.dmaPageSize ?? 1);
  if (address % page !== 0n || size % page !== 0n) {
    throw invalid(cmd, `[${hex(address)}, +${hex(size)}) is not made of whole ${page}-byte pages (pgsizes)`);
  }
  return {
    argsz,
    flags,
    readable: (flags & DmaProt.READ) !== 0,
    writable: (flags & DmaProt.WRITE) !== 0,
    offset,
    address,
    size,
    fd: fds.length === 1 ? fds[0]! : null,
  };
}

/**
 * DMA_UNMAP: flags 0 or ALL (address and size 0). The deprecated
 * GET_DIRTY_BITMAP is checked (its bitmap header must follow and fit
 * argsz) and refused with EOPNOTSUPP: dirty pages are logged through
 * DEVICE_FEATURE instead.
 */
export function decodeDmaUnmap(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): DmaUnmapRequest {
  const cmd = Command.DMA_UNMAP;
  requireBytes(cmd, body, 0, Size.DMA_UNMAP);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  const address = u64(body, 8);
  const size = u64(body, 16);
  argszWithin(cmd, argsz, Size.DMA_UNMAP, ctx);
  const req: DmaUnmapRequest = { argsz, flags, all: false, address, size };
  switch (flags) {
    case 0:
      if (address + size - 1n > U64_MAX) throw invalid(cmd, `[${hex(address)}, +${hex(size)}) wraps around 2^64`);
      return req;
    case DmaUnmapFlags.ALL:
      if (address !== 0n || size !== 0n) throw invalid(cmd, 'with flag ALL, address and size must be 0');
      req.all = true;
      return req;
    case DmaUnmapFlags.GET_DIRTY_BITMAP: {
      requireBytes(cmd, body, Size.DMA_UNMAP, Size.BITMAP, false, 'the dirty bitmap ');
      const bitmapSize = u64(body, 32);
      if (BigInt(argsz) < BigInt(Size.DMA_UNMAP + Size.BITMAP) + bitmapSize) {
        throw invalid(cmd, `argsz ${argsz} has no room for a ${bitmapSize}-byte dirty bitmap`);
      }
      throw new VfioError('EOPNOTSUPP', `${commandName(cmd)}: dirty page tracking through DMA_UNMAP is not supported`);
    }
    default:
      throw invalid(cmd, `flags ${hex(flags)} are not 0, ALL or GET_DIRTY_BITMAP alone`);
  }
}

// ---------------------------------------------------------------- info requests

// GET_INFO, GET_REGION_INFO, GET_IRQ_INFO share one request shape: argsz
// (room for the reply) and an index that must exist when the limit is known.
function decodeInfoRequest(
  cmd: number,
  body: Uint8Array,
  fds: readonly number[],
  size: number,
  limit: number | undefined,
  noun: string,
): InfoRequest {
  requireBytes(cmd, body, 0, size);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const index = cmd === Command.DEVICE_GET_INFO ? 0 : u32(body, 8);
  argszAtLeast(cmd, argsz, size);
  if (limit !== undefined && index >= limit) throw invalid(cmd, `${noun} ${index} does not exist (the device has ${limit})`);
  return { argsz, index };
}

/**
 * DEVICE_GET_INFO: argsz must leave room for the 16-byte reply. Fields after
 * argsz are ignored (the spec says they are zero; no reader depends on it).
 */
export function decodeDeviceInfoRequest(body: Uint8Array, fds: readonly number[]): InfoRequest {
  return decodeInfoRequest(Command.DEVICE_GET_INFO, body, fds, Size.DEVICE_INFO, undefined, '');
}

/** DEVICE_GET_REGION_INFO: the full 32-byte struct, argsz ≥ 32, a region that exists. */
export function decodeRegionInfoRequest(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): InfoRequest {
  return decodeInfoRequest(Command.DEVICE_GET_REGION_INFO, body, fds, Size.REGION_INFO, ctx?.device?.numRegions, 'region');
}

/** DEVICE_GET_IRQ_INFO: argsz ≥ 16, an IRQ index that exists. */
export function decodeIrqInfoRequest(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): InfoRequest {
  return decodeInfoRequest(Command.DEVICE_GET_IRQ_INFO, body, fds, Size.IRQ_INFO, ctx?.device?.numIrqs, 'IRQ index');
}

/** DEVICE_GET_REGION_IO_FDS: flags and count must be 0; argsz within [16, max_data_xfer_size]. */
export function decodeRegionIoFdsRequest(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): RegionIoFdsRequest {
  const cmd = Command.DEVICE_GET_REGION_IO_FDS;
  requireBytes(cmd, body, 0, Size.REGION_IO_FDS);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  const index = u32(body, 8);
  const count = u32(body, 12);
  if (flags !== 0 || count !== 0) throw invalid(cmd, `flags (${hex(flags)}) and count (${count}) must be 0`);
  argszWithin(cmd, argsz, Size.REGION_IO_FDS, ctx);
  const dev = ctx?.device;
  if (dev !== undefined && index >= dev.numRegions) {
    throw invalid(cmd, `region ${index} does not exist (the device has ${dev.numRegions})`);
  }
  return { argsz, index };
}

// ---------------------------------------------------------------- SET_IRQS

const ACTIONS: Record<number, IrqAction> = {
  [IrqSetFlags.ACTION_MASK]: 'mask',
  [IrqSetFlags.ACTION_UNMASK]: 'unmask',
  [IrqSetFlags.ACTION_TRIGGER]: 'trigger',
};

/**
 * DEVICE_SET_IRQS: exactly one DATA_* and one ACTION_* flag; DATA_BOOL
 * carries `count` bytes; DATA_EVENTFD carries `count` fds or none (none
 * de-assigns); only DATA_EVENTFD may carry fds; count 0 (start 0) is valid
 * only as DATA_NONE|ACTION_TRIGGER, which disables the whole index. With a
 * device shape, the index and range must exist and MASK/UNMASK need a
 * MASKABLE index.
 */
export function decodeSetIrqs(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): SetIrqsMessage {
  const cmd = Command.DEVICE_SET_IRQS;
  requireBytes(cmd, body, 0, Size.IRQ_SET);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  const index = u32(body, 8);
  const start = u32(body, 12);
  const count = u32(body, 16);
  argszAtLeast(cmd, argsz, Size.IRQ_SET);
  if ((flags & ~(IrqSetFlags.DATA_TYPE_MASK | IrqSetFlags.ACTION_TYPE_MASK)) !== 0) {
    throw invalid(cmd, `unknown flags ${hex(flags)}`);
  }
  const dataFlag = flags & IrqSetFlags.DATA_TYPE_MASK;
  const action = ACTIONS[flags & IrqSetFlags.ACTION_TYPE_MASK];
  if (action === undefined) throw invalid(cmd, `flags ${hex(flags)} must hold exactly one ACTION_* flag`);
  if (dataFlag !== IrqSetFlags.DATA_NONE && dataFlag !== IrqSetFlags.DATA_BOOL && dataFlag !== IrqSetFlags.DATA_EVENTFD) {
    throw invalid(cmd, `flags ${hex(flags)} must hold exactly one DATA_* flag`);
  }
  if (count === 0) {
    if (start !== 0) throw invalid(cmd, `count 0 needs start 0, got ${start}`);
    if (action !== 'trigger' || dataFlag !== IrqSetFlags.DATA_NONE) {
      throw invalid(cmd, 'count 0 is only valid with DATA_NONE|ACTION_TRIGGER (disable all)');
    }
  }
  if (start + count > 0xffff_ffff) throw invalid(cmd, `start ${start} + count ${count} overflows`);
  if (fds.length !== 0) {
    if (dataFlag !== IrqSetFlags.DATA_EVENTFD) throw invalid(cmd, `carries ${fds.length} fds without DATA_EVENTFD`);
    if (fds.length !== count) throw invalid(cmd, `carries ${fds.length} fds for count ${count}`);
  }
  const dev = ctx?.device;
  if (dev !== undefined) {
    if (index >= dev.numIrqs) throw invalid(cmd, `IRQ index ${index} does not exist (the device has ${dev.numIrqs})`);
    const info = dev.irqInfo(index);
    if (count !== 0 && start + count > info.count) {
      throw invalid(cmd, `IRQs [${start}, ${start + count}) exceed index ${index}'s ${info.count}`);
    }
    if (action !== 'trigger' && (info.flags & IrqInfoFlags.MASKABLE) === 0) {
      throw invalid(cmd, `IRQ index ${index} is not maskable`);
    }
  }
  const base = { argsz, flags, index, start, count, action };
  switch (dataFlag) {
    case IrqSetFlags.DATA_BOOL: {
      exactLength(cmd, body, Size.IRQ_SET + count);
      const values: boolean[] = new Array<boolean>(count);
      for (let i = 0; i < count; i++) values[i] = body[Size.IRQ_SET + i] !== 0;
      return { ...base, data: 'bool', values };
    }
    case IrqSetFlags.DATA_EVENTFD:
      exactLength(cmd, body, Size.IRQ_SET);
      return { ...base, data: 'eventfd', fds: fds.slice() };
    default:
      exactLength(cmd, body, Size.IRQ_SET);
      return { ...base, data: 'none' };
  }
}

// ---------------------------------------------------------------- region access

/**
 * REGION_READ / REGION_WRITE request. A read request is exactly the 16-byte
 * access struct; a write carries exactly `count` bytes after it. count may
 * not exceed max_data_xfer_size. Pass `out` to decode without allocating
 * (the hot path); the result is `out` itself. `data` is a view of the body.
 */
export function decodeRegionAccess(
  cmd: typeof Command.REGION_READ | typeof Command.REGION_WRITE,
  body: Uint8Array,
  fds: readonly number[],
  ctx?: DecodeContext,
  out?: RegionAccess,
): RegionAccess {
  noFds(cmd, fds);
  const r = accessOf(cmd, body, body.length, ctx, out);
  // A read request has no data: skip the view (a subarray costs ~100 ns).
  r.data = cmd === Command.REGION_WRITE ? dataOf(body) : NO_DATA;
  return r;
}

/**
 * A REGION_WRITE known by its first 16 body bytes (`head`) while its data
 * is still arriving: checked as decodeRegionAccess checks the whole body of
 * `bodyLength` bytes, `data` left empty. For receiving the data in place.
 */
export function decodeRegionWriteHead(head: Uint8Array, bodyLength: number, ctx: DecodeContext, out: RegionAccess): RegionAccess {
  const r = accessOf(Command.REGION_WRITE, head, bodyLength, ctx, out);
  r.data = NO_DATA;
  return r;
}

function accessOf(cmd: number, body: Uint8Array, bodyLength: number, ctx: DecodeContext | undefined, out: RegionAccess | undefined): RegionAccess {
  requireBytes(cmd, body, 0, Size.REGION_ACCESS);
  const offset = u64n(body, 0);
  const region = u32(body, 8);
  const count = u32(body, 12);
  if (count > maxXfer(ctx)) throw invalid(cmd, `count ${count} exceeds max_data_xfer_size ${maxXfer(ctx)}`);
  const expected = cmd === Command.REGION_WRITE ? Size.REGION_ACCESS + count : Size.REGION_ACCESS;
  if (bodyLength !== expected) throw malformed(cmd, `body is ${bodyLength} bytes, expected ${expected}`);
  checkRegionRange(cmd, ctx, region, offset, count);
  const r = out ?? { offset: 0, region: 0, count: 0, data: NO_DATA };
  r.offset = offset;
  r.region = region;
  r.count = count;
  return r;
}

// The data view of the last REGION_WRITE body, reused while bodies are the
// same view (the framer reuses one for a message at the same place).
let lastBody: Uint8Array | null = null;
let lastData: Uint8Array = NO_DATA;

function dataOf(body: Uint8Array): Uint8Array {
  if (body !== lastBody || lastData.length !== body.length - Size.REGION_ACCESS) {
    lastData = body.subarray(Size.REGION_ACCESS);
    lastBody = body;
  }
  return lastData;
}

/**
 * REGION_WRITE_MULTI: wr_cnt (≤ 200) entries of {offset, region, count ≤ 8,
 * 8-byte data slot}, exactly filling the body. Each entry is checked like a
 * REGION_WRITE.
 */
export function decodeWriteMulti(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): WriteMultiEntry[] {
  const cmd = Command.REGION_WRITE_MULTI;
  requireBytes(cmd, body, 0, Size.WRITE_MULTI_COUNT);
  noFds(cmd, fds);
  const n = u64n(body, 0);
  if (n < 0 || n > WRITE_MULTI_MAX_ENTRIES) throw invalid(cmd, `wr_cnt exceeds ${WRITE_MULTI_MAX_ENTRIES}`);
  exactLength(cmd, body, Size.WRITE_MULTI_COUNT + n * Size.WRITE_MULTI_ENTRY);
  const entries: WriteMultiEntry[] = new Array<WriteMultiEntry>(n);
  for (let i = 0, o = Size.WRITE_MULTI_COUNT; i < n; i++, o += Size.WRITE_MULTI_ENTRY) {
    const offset = u64n(body, o);
    const region = u32(body, o + 8);
    const count = u32(body, o + 12);
    if (count === 0 || count > WRITE_MULTI_DATA_MAX) throw invalid(cmd, `entry ${i}: count ${count} is not 1..${WRITE_MULTI_DATA_MAX}`);
    checkRegionRange(cmd, ctx, region, offset, count);
    entries[i] = { offset, region, count, data: body.subarray(o + 16, o + 16 + count) };
  }
  return entries;
}

// ---------------------------------------------------------------- DMA access (server → client)

function dmaCount(cmd: number, body: Uint8Array, ctx: DecodeContext | undefined): number {
  // 'qemu' layout keeps count in 32 bits; 'spec' in 64.
  const count = ctx?.dmaLayout === 'qemu' ? u32(body, 8) : u64n(body, 8);
  if (count < 0 || count > maxXfer(ctx)) {
    throw new VfioError('E2BIG', `${commandName(cmd)}: count exceeds max_data_xfer_size ${maxXfer(ctx)}`);
  }
  return count;
}

/** DMA_READ request (a client decodes it): address and count, no data. */
export function decodeDmaRead(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): DmaRwMessage {
  const cmd = Command.DMA_READ;
  requireBytes(cmd, body, 0, Size.DMA_ACCESS);
  noFds(cmd, fds);
  const count = dmaCount(cmd, body, ctx);
  exactLength(cmd, body, Size.DMA_ACCESS);
  return { address: u64(body, 0), count, data: body.subarray(Size.DMA_ACCESS) };
}

/** DMA_WRITE request (a client decodes it): address, count and exactly `count` bytes. */
export function decodeDmaWrite(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): DmaRwMessage {
  const cmd = Command.DMA_WRITE;
  requireBytes(cmd, body, 0, Size.DMA_ACCESS);
  noFds(cmd, fds);
  const count = dmaCount(cmd, body, ctx);
  exactLength(cmd, body, Size.DMA_ACCESS + count);
  const at = dmaDataOffset(ctx?.dmaLayout);
  return { address: u64(body, 0), count, data: body.subarray(at, at + count) };
}

// ---------------------------------------------------------------- reset, features, migration

/** DEVICE_RESET: no body, no fds. */
export function decodeDeviceReset(body: Uint8Array, fds: readonly number[]): void {
  const cmd = Command.DEVICE_RESET;
  noFds(cmd, fds);
  exactLength(cmd, body, 0);
}

/**
 * DEVICE_FEATURE: at least one of GET/SET/PROBE; GET and SET together only
 * with PROBE; no flag above PROBE. For SET and PROBE, argsz must cover the
 * request (the reply echoes it); for GET it bounds the reply.
 */
export function decodeDeviceFeature(body: Uint8Array, fds: readonly number[]): DeviceFeatureMessage {
  const cmd = Command.DEVICE_FEATURE;
  requireBytes(cmd, body, 0, Size.DEVICE_FEATURE);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  argszAtLeast(cmd, argsz, Size.DEVICE_FEATURE);
  const ops = FeatureFlags.GET | FeatureFlags.SET | FeatureFlags.PROBE;
  if ((flags & ~(FeatureFlags.MASK | ops)) >>> 0 !== 0) throw invalid(cmd, `unknown flags ${hex(flags)}`);
  const get = (flags & FeatureFlags.GET) !== 0;
  const set = (flags & FeatureFlags.SET) !== 0;
  const probe = (flags & FeatureFlags.PROBE) !== 0;
  if (!get && !set && !probe) throw invalid(cmd, 'none of GET, SET, PROBE is set');
  if (get && set && !probe) throw invalid(cmd, 'GET and SET together need PROBE');
  if ((set || probe) && argsz < body.length) throw invalid(cmd, `argsz ${argsz} is below the request's ${body.length} bytes`);
  return { argsz, flags, feature: flags & FeatureFlags.MASK, get, set, probe, data: body.subarray(Size.DEVICE_FEATURE) };
}

function decodeMig(cmd: number, body: Uint8Array, fds: readonly number[], ctx: DecodeContext | undefined, withData: boolean): MigData {
  requireBytes(cmd, body, 0, Size.MIG_DATA);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const size = u32(body, 4);
  if (size > maxXfer(ctx)) throw invalid(cmd, `size ${size} exceeds max_data_xfer_size ${maxXfer(ctx)}`);
  if (argsz < Size.MIG_DATA + size) throw invalid(cmd, `argsz ${argsz} is below ${Size.MIG_DATA} + size ${size}`);
  exactLength(cmd, body, withData ? Size.MIG_DATA + size : Size.MIG_DATA);
  return { argsz, size, data: body.subarray(Size.MIG_DATA) };
}

/** MIG_DATA_READ request: argsz must leave room for `size` bytes of data. */
export function decodeMigDataRead(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): MigData {
  return decodeMig(Command.MIG_DATA_READ, body, fds, ctx, false);
}

/** MIG_DATA_WRITE request: exactly `size` bytes of data (libvfio-user also wants argsz ≥ 8 + size). */
export function decodeMigDataWrite(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): MigData {
  return decodeMig(Command.MIG_DATA_WRITE, body, fds, ctx, true);
}

/** DIRTY_PAGES (removed from the spec): checked for shape so the refusal is precise. */
export function decodeDirtyPages(body: Uint8Array, fds: readonly number[]): DirtyPagesRequest {
  const cmd = Command.DIRTY_PAGES;
  requireBytes(cmd, body, 0, Size.DIRTY_PAGES);
  noFds(cmd, fds);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  argszAtLeast(cmd, argsz, Size.DIRTY_PAGES);
  if (flags !== DirtyPagesFlags.START && flags !== DirtyPagesFlags.STOP && flags !== DirtyPagesFlags.GET_BITMAP) {
    throw invalid(cmd, `flags ${hex(flags)} must be exactly one of START, STOP, GET_BITMAP`);
  }
  return { argsz, flags };
}

function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}
