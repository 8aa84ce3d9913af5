/**
 * How a display device offers its framebuffer BAR: the whole BAR as one
 * sparse-mmap area, so the client maps it and a guest's pixel writes land
 * in the shared memory without ever becoming messages.
 */
import { RegionFlags, type RegionInfo } from '../../base/uapi.js';

/**
 * `info` (of a memory-backed BAR) with a sparse-mmap capability covering
 * what the library allows to be mapped: its own areas when it cut some out,
 * else the whole region.
 */
export function offerFramebuffer(info: RegionInfo): RegionInfo {
  if ((info.flags & RegionFlags.MMAP) === 0 || info.size === 0) return info;
  return { ...info, sparseMmap: info.sparseMmap ?? [{ offset: 0, size: info.size }] };
}
