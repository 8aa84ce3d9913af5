/**
 * MappedMemory: shared memory seen from JS. `create` makes memory to hand
 * out (a BAR a client may mmap); `map` reaches memory handed in (a client's
 * DMA region).
 */
import { close, memfdCreate, mmap, munmap, sealSize } from './syscalls.js';

/** Access wanted from a mapping; `read` must be true (see syscalls.mmap). */
export interface Protection {
  read: boolean;
  write: boolean;
}

export class MappedMemory {
  /** The fd the memory comes from; closed by close() only when `ownsFd`. */
  readonly fd: number;
  /** True when close() closes `fd` too. */
  readonly ownsFd: boolean;
  /** The mapped bytes; length 0 after close(). */
  readonly bytes: Uint8Array;
  readonly #buffer: ArrayBuffer;
  #closed = false;

  private constructor(fd: number, ownsFd: boolean, buffer: ArrayBuffer) {
    this.fd = fd;
    this.ownsFd = ownsFd;
    this.#buffer = buffer;
    this.bytes = new Uint8Array(buffer);
  }

  /**
   * `size` bytes of fresh zeroed shared memory (memfd `name`), mapped read
   * and write. Its size is sealed, so a peer given the fd cannot truncate it
   * under this mapping.
   */
  static create(name: string, size: number): MappedMemory {
    const fd = memfdCreate(name, size);
    try {
      sealSize(fd);
      return new MappedMemory(fd, true, mmap(fd, 0, size, { read: true, write: true }));
    } catch (err) {
      close(fd);
      throw err;
    }
  }

  /**
   * Maps `length` bytes of `fd` from `offset` (page aligned). The fd stays
   * the caller's and may be closed at once: the mapping holds the memory.
   */
  static map(fd: number, offset: number, length: number, prot: Protection = { read: true, write: true }): MappedMemory {
    return new MappedMemory(fd, false, mmap(fd, offset, length, prot));
  }

  /** Unmaps (every view over the memory becomes length 0) and closes an owned fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    munmap(this.#buffer);
    if (this.ownsFd) close(this.fd);
  }
}
