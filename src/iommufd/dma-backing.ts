/**
 * What stands behind a DMA mapping: memory the server can touch directly (a
 * client's memfd mapped into this process, or a plain buffer in tests), or a
 * channel to memory it cannot map (vfio-user's DMA_READ/DMA_WRITE messages to
 * a client that passed no fd).
 */
export interface DmaBacking {
  /** Bytes available from offset 0. */
  readonly size: number;
  /**
   * The bytes themselves when they are mapped here; null when every access
   * has to go through read()/write().
   */
  readonly memory: Uint8Array | null;
  /** Reads size(dest) bytes at offset; required when memory is null. */
  read?(offset: number, dest: Uint8Array): Promise<void>;
  /** Writes src at offset; required when memory is null. */
  write?(offset: number, src: Uint8Array): Promise<void>;
  /** Called exactly once, when its mapping is removed (munmap, close the fd). */
  release(): void;
}

/** A backing over bytes this process holds. */
export class MemoryBacking implements DmaBacking {
  readonly size: number;
  private released = false;

  /** @param onRelease called once when the mapping goes away (e.g. munmap + close) */
  constructor(
    readonly memory: Uint8Array,
    private readonly onRelease?: () => void,
  ) {
    this.size = memory.byteLength;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
  }
}
