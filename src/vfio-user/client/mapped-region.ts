/**
 * A device region mapped into the client: its mmap-able areas (the sparse
 * areas the server listed, or the whole region), each mapped from the fd
 * of the region info reply at `offset + area.offset`. Accesses through the
 * mapping never become messages: this is how a guest's framebuffer or
 * doorbell writes reach the device's memory directly.
 */
import { VfioError } from '../../base/errors.js';
import type { SparseMmapArea } from '../../base/uapi.js';
import { MappedMemory } from '../../native/index.js';

/** One mapped area: region offsets [offset, offset+size). */
export interface MappedArea extends SparseMmapArea {
  readonly bytes: Uint8Array;
}

export class MappedRegion {
  readonly areas: readonly MappedArea[];
  readonly #mappings: MappedMemory[];

  private constructor(
    readonly index: number,
    mappings: MappedMemory[],
    areas: MappedArea[],
  ) {
    this.#mappings = mappings;
    this.areas = areas;
  }

  /**
   * Maps `areas` of region `index` from `fd` (which stays the caller's),
   * region offset X being file offset `base + X`. Offsets must be page
   * aligned, as mmap wants.
   */
  static map(index: number, fd: number, base: number, areas: readonly SparseMmapArea[], writable: boolean): MappedRegion {
    const mappings: MappedMemory[] = [];
    const mapped: MappedArea[] = [];
    try {
      for (const a of areas) {
        const m = MappedMemory.map(fd, base + a.offset, a.size, { read: true, write: writable });
        mappings.push(m);
        mapped.push({ offset: a.offset, size: a.size, bytes: m.bytes });
      }
    } catch (err) {
      for (const m of mappings) m.close();
      throw err;
    }
    return new MappedRegion(index, mappings, mapped);
  }

  /** A view of region bytes [offset, offset+length), which must lie inside one mapped area. */
  at(offset: number, length: number): Uint8Array {
    for (const a of this.areas) {
      if (offset >= a.offset && offset + length <= a.offset + a.size) {
        return a.bytes.subarray(offset - a.offset, offset - a.offset + length);
      }
    }
    throw new VfioError('EFAULT', `region ${this.index}: [${offset}, +${length}) is not inside a mapped area`);
  }

  /** Unmaps every area (views become empty). Idempotent. */
  unmap(): void {
    for (const m of this.#mappings) m.close();
  }
}
