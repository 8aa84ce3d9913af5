/**
 * DEVICE_GET_REGION_INFO replies: struct vfio_region_info followed by a
 * chain of capabilities (sparse mmap areas, device-specific type), with the
 * two-pass argsz rule: a reply that does not fit the client's argsz carries
 * the bare struct and the argsz it would need.
 *
 * Capability offsets (`cap_offset`, each header's `next`) count from the
 * start of the region info struct, i.e. from the start of the reply body.
 */
import { VfioError } from '../base/errors.js';
import type { RegionInfo, SparseMmapArea } from '../base/uapi.js';
import { RegionCap, RegionFlags } from '../base/uapi.js';
import { need, u16, u32, u64n } from './buffer-reader.js';
import { put16, put32, put64 } from './buffer-writer.js';
import type { RegionInfoReply, UnknownRegionCap } from './messages.js';
import { Size } from './protocol.js';

const WHAT = 'VFIO_USER_DEVICE_GET_REGION_INFO reply';

function capsSize(info: RegionInfo): number {
  let n = 0;
  if (info.sparseMmap !== undefined && info.sparseMmap.length > 0) {
    n += Size.CAP_SPARSE_MMAP + info.sparseMmap.length * Size.SPARSE_MMAP_AREA;
  }
  if (info.type !== undefined) n += Size.CAP_TYPE;
  return n;
}

/** The argsz a complete reply for `info` needs (struct plus capabilities). */
export function regionInfoSize(info: RegionInfo): number {
  return Size.REGION_INFO + capsSize(info);
}

/**
 * The reply body for `info` given the client's argsz, and whether the
 * region's mmap fd should go with it.
 *
 * When the capabilities do not fit, the CAPS flag is left clear and
 * cap_offset is 0 (libvfio-user's behaviour): the kernel sets CAPS with
 * cap_offset 0 instead, which QEMU's vfio-user client rejects as invalid.
 */
export function regionInfoReplyBody(info: RegionInfo, clientArgsz: number): { body: Uint8Array; sendFd: boolean } {
  const full = regionInfoSize(info);
  const withCaps = full > Size.REGION_INFO && clientArgsz >= full;
  const b = new Uint8Array(withCaps ? full : Size.REGION_INFO);
  let flags = info.flags & ~RegionFlags.CAPS;
  if (withCaps) flags |= RegionFlags.CAPS;
  put32(b, 0, full);
  put32(b, 4, flags);
  put32(b, 8, info.index);
  put32(b, 12, withCaps ? Size.REGION_INFO : 0);
  put64(b, 16, info.size);
  put64(b, 24, info.mmap?.offset ?? 0);
  if (withCaps) {
    let off: number = Size.REGION_INFO;
    const sparse = info.sparseMmap ?? [];
    if (sparse.length > 0) {
      const next = off + Size.CAP_SPARSE_MMAP + sparse.length * Size.SPARSE_MMAP_AREA;
      put16(b, off, RegionCap.SPARSE_MMAP);
      put16(b, off + 2, 1);
      put32(b, off + 4, info.type !== undefined ? next : 0);
      put32(b, off + 8, sparse.length);
      let a = off + Size.CAP_SPARSE_MMAP;
      for (const area of sparse) {
        put64(b, a, area.offset);
        put64(b, a + 8, area.size);
        a += Size.SPARSE_MMAP_AREA;
      }
      off = next;
    }
    if (info.type !== undefined) {
      put16(b, off, RegionCap.TYPE);
      put16(b, off + 2, 1);
      put32(b, off + 4, 0);
      put32(b, off + 8, info.type.type);
      put32(b, off + 12, info.type.subtype);
    }
  }
  // Only a complete reply carries the fd: a client retrying with a larger
  // argsz would otherwise receive (and have to close) it twice.
  const mmapable = (info.flags & RegionFlags.MMAP) !== 0 && info.mmap !== undefined;
  return { body: b, sendFd: mmapable && (withCaps || full === Size.REGION_INFO) };
}

function num(b: Uint8Array, off: number, what: string): number {
  const v = u64n(b, off);
  if (v < 0) throw new VfioError('EOVERFLOW', `${WHAT}: ${what} does not fit 53 bits`);
  return v;
}

/**
 * Decodes a region info reply body and walks its capability chain. The
 * chain is read only when CAPS is set and the reply is long enough to hold
 * what argsz announces; otherwise the caller should retry with `argsz`.
 * Rejects (EINVAL) a chain that points outside the reply, backwards (a loop),
 * or into itself, and areas that exceed their capability.
 */
export function decodeRegionInfoReply(body: Uint8Array, fds: readonly number[]): RegionInfoReply {
  need(body, 0, Size.REGION_INFO, WHAT);
  if (fds.length > 1) throw new VfioError('EINVAL', `${WHAT}: carried ${fds.length} fds, at most 1 is allowed`);
  const argsz = u32(body, 0);
  if (argsz < Size.REGION_INFO) throw new VfioError('EINVAL', `${WHAT}: argsz ${argsz} is below ${Size.REGION_INFO}`);
  const reply: RegionInfoReply = {
    argsz,
    flags: u32(body, 4),
    index: u32(body, 8),
    capOffset: u32(body, 12),
    size: num(body, 16, 'size'),
    offset: num(body, 24, 'offset'),
    fd: fds.length === 1 ? fds[0]! : null,
  };
  if ((reply.flags & RegionFlags.CAPS) === 0 || argsz > body.length) return reply;
  // Caps live within the first argsz bytes; anything after is not ours to read.
  const end = argsz;
  let off = reply.capOffset;
  while (off !== 0) {
    if (off < Size.REGION_INFO || off + Size.CAP_HEADER > end) {
      throw new VfioError('EINVAL', `${WHAT}: capability at ${off} lies outside the reply (${Size.REGION_INFO}..${end})`);
    }
    const id = u16(body, off);
    const version = u16(body, off + 2);
    const next = u32(body, off + 4);
    // Strictly forward links: the walk cannot loop.
    if (next !== 0 && next < off + Size.CAP_HEADER) {
      throw new VfioError('EINVAL', `${WHAT}: capability at ${off} points back to ${next}`);
    }
    const capEnd = next === 0 ? end : Math.min(next, end);
    if (id === RegionCap.SPARSE_MMAP) {
      need(body.subarray(0, capEnd), off, Size.CAP_SPARSE_MMAP, `${WHAT}: sparse mmap capability`);
      const nr = u32(body, off + 8);
      if (nr > (capEnd - off - Size.CAP_SPARSE_MMAP) / Size.SPARSE_MMAP_AREA) {
        throw new VfioError('EINVAL', `${WHAT}: sparse mmap capability claims ${nr} areas, it has room for fewer`);
      }
      const areas: SparseMmapArea[] = [];
      for (let i = 0, a = off + Size.CAP_SPARSE_MMAP; i < nr; i++, a += Size.SPARSE_MMAP_AREA) {
        areas.push({ offset: num(body, a, 'sparse area offset'), size: num(body, a + 8, 'sparse area size') });
      }
      reply.sparseMmap = areas;
    } else if (id === RegionCap.TYPE) {
      need(body.subarray(0, capEnd), off, Size.CAP_TYPE, `${WHAT}: type capability`);
      reply.type = { type: u32(body, off + 8), subtype: u32(body, off + 12) };
    } else {
      const other: UnknownRegionCap = { id, version, data: body.subarray(off + Size.CAP_HEADER, capEnd) };
      (reply.otherCaps ??= []).push(other);
    }
    off = next;
  }
  return reply;
}
