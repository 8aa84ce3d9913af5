/**
 * What stands behind a DMA mapping, and how its bytes are reached:
 *  - 'memory': mapped into this process (a client's size-sealed memfd, or
 *    a plain buffer in tests): synchronous copies, and zero-copy views;
 *  - 'file': through the client's fd with pread/pwrite (memory the client
 *    could shrink: a vanished page is an EFAULT for that access, never a
 *    signal): synchronous copies, no views;
 *  - 'messages': through the client itself (vfio-user's DMA_READ and
 *    DMA_WRITE): asynchronous only.
 */
export type DmaReach = 'memory' | 'file' | 'messages';

export interface DmaBacking {
  /** Bytes available from offset 0. */
  readonly size: number;
  readonly reach: DmaReach;
  /** Copies dest.byteLength bytes at `offset` ('memory' and 'file'); EFAULT when they are gone. */
  readSync?(offset: number, dest: Uint8Array): void;
  /** Copies src to `offset` ('memory' and 'file'). */
  writeSync?(offset: number, src: Uint8Array): void;
  /** Reads size(dest) bytes at offset ('messages'). */
  read?(offset: number, dest: Uint8Array): Promise<void>;
  /** Writes src at offset ('messages'). */
  write?(offset: number, src: Uint8Array): Promise<void>;
  /** A zero-copy view of [offset, offset+length) ('memory'), valid until release(). */
  view?(offset: number, length: number): Uint8Array;
  /** Called exactly once, when its mapping is removed (munmap, close the fd). */
  release(): void;
}

/** A backing over bytes this process holds. */
export class MemoryBacking implements DmaBacking {
  readonly size: number;
  readonly reach = 'memory';
  private released = false;

  /** @param onRelease called once when the mapping goes away (e.g. munmap + close) */
  constructor(
    readonly memory: Uint8Array,
    private readonly onRelease?: () => void,
  ) {
    this.size = memory.byteLength;
  }

  readSync(offset: number, dest: Uint8Array): void {
    dest.set(this.memory.subarray(offset, offset + dest.byteLength));
  }

  writeSync(offset: number, src: Uint8Array): void {
    this.memory.set(src, offset);
  }

  view(offset: number, length: number): Uint8Array {
    return this.memory.subarray(offset, offset + length);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
  }
}
