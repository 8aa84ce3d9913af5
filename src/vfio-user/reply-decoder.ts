/**
 * Decoders for reply messages: what a client receives for its commands, and
 * what a server receives for its DMA_READ / DMA_WRITE. A reply is matched to
 * its command by msg_id (the caller's job); these check the body's shape.
 * Errnos: a malformed reply is EINVAL (EOVERFLOW for a u64 that does not fit
 * the number uvfio keeps it in), like QEMU's client treats a bad reply.
 */
import { VfioError } from '../base/errors.js';
import { FeatureFlags } from '../base/uapi.js';
import { u32, u64, u64n } from './buffer-reader.js';
import { type DecodeContext, dmaDataOffset, maxXfer } from './context.js';
import { malformed, refuseFds, requireBytes } from './malformed.js';
import type { Frame } from './framer.js';
import { hasErrorFlag } from './header.js';
import type {
  DeviceFeatureMessage,
  DeviceInfoReply,
  DmaRwMessage,
  DmaUnmapRequest,
  IrqInfoReply,
  MigData,
  RegionAccess,
  RegionIoFdsReply,
  SubRegionIoFd,
  VersionMessage,
} from './messages.js';
import { Command, commandName, DmaUnmapFlags, IoFdType, Size } from './protocol.js';
import { decodeVersion } from './version.js';

const LIBVFIO_USER_IOEVENTFD_SIZE = 48;

function invalid(cmd: number, sentence: string): VfioError {
  return malformed(cmd, sentence, true);
}

function noFds(cmd: number, fds: readonly number[]): void {
  refuseFds(cmd, fds, true);
}

function num(cmd: number, b: Uint8Array, off: number, what: string): number {
  const v = u64n(b, off);
  if (v < 0) throw new VfioError('EOVERFLOW', `${commandName(cmd)} reply: ${what} does not fit 53 bits`);
  return v;
}

/**
 * The error a reply reports, or null for a success reply. The spec allows
 * the ERROR flag with error_no 0; that is reported as EIO.
 */
export function replyError(frame: Frame): VfioError | null {
  if (!hasErrorFlag(frame.flags)) return null;
  if (frame.errorNo === 0) return new VfioError('EIO', `${commandName(frame.cmd)} failed without an errno`);
  return VfioError.fromErrno(frame.errorNo, `${commandName(frame.cmd)} failed with errno ${frame.errorNo}`);
}

/** VERSION reply; a twin socket fd must be among the fds (see version.ts). */
export function decodeVersionReply(body: Uint8Array, fds: readonly number[]): VersionMessage {
  return decodeVersion(body, fds, 'reply');
}

/** Replies without payload: DMA_MAP, DEVICE_SET_IRQS, DEVICE_RESET, MIG_DATA_WRITE. */
export function decodeEmptyReply(cmd: number, body: Uint8Array, fds: readonly number[]): void {
  noFds(cmd, fds);
  if (body.length !== 0) throw invalid(cmd, `has ${body.length} bytes of payload, expected none`);
}

/** DMA_UNMAP reply: the request echoed (or, from terse servers, nothing). */
export function decodeDmaUnmapReply(body: Uint8Array, fds: readonly number[]): DmaUnmapRequest | null {
  const cmd = Command.DMA_UNMAP;
  noFds(cmd, fds);
  if (body.length === 0) return null;
  requireBytes(cmd, body, 0, Size.DMA_UNMAP, true);
  const flags = u32(body, 4);
  return { argsz: u32(body, 0), flags, all: (flags & DmaUnmapFlags.ALL) !== 0, address: u64(body, 8), size: u64(body, 16) };
}

/** DEVICE_GET_INFO reply. */
export function decodeDeviceInfoReply(body: Uint8Array, fds: readonly number[]): DeviceInfoReply {
  const cmd = Command.DEVICE_GET_INFO;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.DEVICE_INFO, true);
  const argsz = u32(body, 0);
  if (argsz < Size.DEVICE_INFO) throw invalid(cmd, `argsz ${argsz} is below ${Size.DEVICE_INFO}`);
  return { argsz, flags: u32(body, 4), numRegions: u32(body, 8), numIrqs: u32(body, 12) };
}

/** DEVICE_GET_IRQ_INFO reply. */
export function decodeIrqInfoReply(body: Uint8Array, fds: readonly number[]): IrqInfoReply {
  const cmd = Command.DEVICE_GET_IRQ_INFO;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.IRQ_INFO, true);
  const argsz = u32(body, 0);
  if (argsz < Size.IRQ_INFO) throw invalid(cmd, `argsz ${argsz} is below ${Size.IRQ_INFO}`);
  return { argsz, flags: u32(body, 4), index: u32(body, 8), count: u32(body, 12) };
}

/**
 * DEVICE_GET_REGION_IO_FDS reply. Entries are read only when the reply holds
 * all `count` of them (argsz = 16 + count × entry size fits the body); each
 * entry's fd_index must name one of the fds carried.
 */
export function decodeRegionIoFdsReply(body: Uint8Array, fds: readonly number[]): RegionIoFdsReply {
  const cmd = Command.DEVICE_GET_REGION_IO_FDS;
  requireBytes(cmd, body, 0, Size.REGION_IO_FDS, true);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  const index = u32(body, 8);
  const count = u32(body, 12);
  if (flags !== 0) throw invalid(cmd, `flags ${flags} must be 0`);
  const reply: RegionIoFdsReply = { argsz, flags, index, count, subRegions: [], fds: fds.slice() };
  if (count === 0 || body.length === Size.REGION_IO_FDS) {
    if (fds.length !== 0) throw invalid(cmd, `carries ${fds.length} fds but no sub-regions`);
    return reply;
  }
  // The spec: entry i is at 16 + i * ((argsz - 16) / count); 40 bytes today.
  const stride = (argsz - Size.REGION_IO_FDS) / count;
  if (!Number.isInteger(stride) || stride < Size.SUB_REGION_IO_FD) {
    throw invalid(cmd, `argsz ${argsz} does not divide into ${count} sub-regions of at least ${Size.SUB_REGION_IO_FD} bytes`);
  }
  if (body.length !== argsz) throw invalid(cmd, `body is ${body.length} bytes, argsz says ${argsz}`);
  for (let i = 0, o = Size.REGION_IO_FDS; i < count; i++, o += stride) {
    const fdIndex = u32(body, o + 16);
    if (fdIndex >= fds.length) throw invalid(cmd, `sub-region ${i} names fd ${fdIndex} of ${fds.length}`);
    const type = u32(body, o + 20);
    const sub: SubRegionIoFd = {
      offset: u64(body, o),
      size: u64(body, o + 8),
      fdIndex,
      type,
      flags: u32(body, o + 24),
      aux: u32(body, o + 28),
      datamatch: u64(body, o + 32),
    };
    // libvfio-user's ioeventfd entries are 48 bytes: shadow_offset at 32, datamatch at 40.
    if (stride >= LIBVFIO_USER_IOEVENTFD_SIZE && type !== IoFdType.IOREGIONFD) {
      sub.shadowOffset = u64(body, o + 32);
      sub.datamatch = u64(body, o + 40);
      if (type === IoFdType.IOEVENTFD_SHADOW && sub.aux >= fds.length) {
        throw invalid(cmd, `sub-region ${i} names shadow fd ${sub.aux} of ${fds.length}`);
      }
    }
    reply.subRegions.push(sub);
  }
  return reply;
}

/**
 * REGION_READ reply: the access struct and exactly `count` bytes. The
 * caller checks count against what it asked for (QEMU: E2BIG when more).
 */
export function decodeRegionReadReply(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): RegionAccess {
  const cmd = Command.REGION_READ;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.REGION_ACCESS, true);
  const count = u32(body, 12);
  if (count > maxXfer(ctx)) throw new VfioError('E2BIG', `${commandName(cmd)} reply: count ${count} exceeds max_data_xfer_size`);
  if (body.length !== Size.REGION_ACCESS + count) {
    throw invalid(cmd, `body is ${body.length} bytes for count ${count}`);
  }
  return { offset: num(cmd, body, 0, 'offset'), region: u32(body, 8), count, data: body.subarray(Size.REGION_ACCESS) };
}

/** REGION_WRITE reply: the access struct without data. */
export function decodeRegionWriteReply(body: Uint8Array, fds: readonly number[]): RegionAccess {
  const cmd = Command.REGION_WRITE;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.REGION_ACCESS, true);
  if (body.length !== Size.REGION_ACCESS) throw invalid(cmd, `body is ${body.length} bytes, expected ${Size.REGION_ACCESS}`);
  return { offset: num(cmd, body, 0, 'offset'), region: u32(body, 8), count: u32(body, 12), data: body.subarray(Size.REGION_ACCESS) };
}

/** DMA_READ reply (a server decodes it): address, count, exactly `count` bytes. */
export function decodeDmaReadReply(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): DmaRwMessage {
  const cmd = Command.DMA_READ;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.DMA_ACCESS, true);
  const count = ctx?.dmaLayout === 'qemu' ? u32(body, 8) : u64n(body, 8);
  if (count < 0 || count > maxXfer(ctx)) throw new VfioError('E2BIG', `${commandName(cmd)} reply: count exceeds max_data_xfer_size`);
  if (body.length !== Size.DMA_ACCESS + count) throw invalid(cmd, `body is ${body.length} bytes for count ${count}`);
  const at = dmaDataOffset(ctx?.dmaLayout);
  return { address: u64(body, 0), count, data: body.subarray(at, at + count) };
}

/**
 * DMA_WRITE reply (a server decodes it). Three shapes exist in the wild: no
 * payload (QEMU), address + u32 count (the spec's table, 12 bytes), and
 * address + u64 count (libvfio-user, 16 bytes). Returns null for the first.
 */
export function decodeDmaWriteReply(body: Uint8Array, fds: readonly number[]): DmaRwMessage | null {
  const cmd = Command.DMA_WRITE;
  noFds(cmd, fds);
  if (body.length === 0) return null;
  if (body.length !== Size.DMA_WRITE_REPLY && body.length !== Size.DMA_ACCESS) {
    throw invalid(cmd, `body is ${body.length} bytes, expected 0, 12 or 16`);
  }
  const count = body.length === Size.DMA_ACCESS ? u64n(body, 8) : u32(body, 8);
  if (count < 0) throw new VfioError('EOVERFLOW', `${commandName(cmd)} reply: count does not fit 53 bits`);
  return { address: u64(body, 0), count, data: body.subarray(body.length) };
}

/** REGION_WRITE_MULTI reply: the number of writes done. */
export function decodeWriteMultiReply(body: Uint8Array, fds: readonly number[]): number {
  const cmd = Command.REGION_WRITE_MULTI;
  noFds(cmd, fds);
  if (body.length !== Size.WRITE_MULTI_COUNT) throw invalid(cmd, `body is ${body.length} bytes, expected 8`);
  return num(cmd, body, 0, 'wr_cnt');
}

/** DEVICE_FEATURE reply: argsz covers the payload; data is what follows flags. */
export function decodeDeviceFeatureReply(body: Uint8Array, fds: readonly number[]): DeviceFeatureMessage {
  const cmd = Command.DEVICE_FEATURE;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.DEVICE_FEATURE, true);
  const argsz = u32(body, 0);
  const flags = u32(body, 4);
  if (argsz < body.length) throw invalid(cmd, `argsz ${argsz} is below the reply's ${body.length} bytes`);
  return {
    argsz,
    flags,
    feature: flags & FeatureFlags.MASK,
    get: (flags & FeatureFlags.GET) !== 0,
    set: (flags & FeatureFlags.SET) !== 0,
    probe: (flags & FeatureFlags.PROBE) !== 0,
    data: body.subarray(Size.DEVICE_FEATURE),
  };
}

/**
 * MIG_DATA_READ reply: argsz = 8 + size, followed by `size` bytes. Bytes
 * after them are padding and ignored: libvfio-user sizes its reply to the
 * size asked for, whatever it returns.
 */
export function decodeMigDataReadReply(body: Uint8Array, fds: readonly number[], ctx?: DecodeContext): MigData {
  const cmd = Command.MIG_DATA_READ;
  noFds(cmd, fds);
  requireBytes(cmd, body, 0, Size.MIG_DATA, true);
  const argsz = u32(body, 0);
  const size = u32(body, 4);
  if (size > maxXfer(ctx)) throw new VfioError('E2BIG', `${commandName(cmd)} reply: size ${size} exceeds max_data_xfer_size`);
  if (body.length < Size.MIG_DATA + size) throw invalid(cmd, `body is ${body.length} bytes for size ${size}`);
  if (argsz !== Size.MIG_DATA + size) throw invalid(cmd, `argsz ${argsz} is not ${Size.MIG_DATA} + size ${size}`);
  return { argsz, size, data: body.subarray(Size.MIG_DATA, Size.MIG_DATA + size) };
}
