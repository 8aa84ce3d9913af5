/**
 * MappedMemory: shared memory seen from JS. `create` makes memory to hand
 * out (a BAR a client may mmap); `map` reaches memory handed in as one
 * ArrayBuffer. ClientMemory: a client's DMA memory, mapped once with no
 * ArrayBuffer, reached by copies and by views made on demand.
 */
import { VfioError } from '../base/errors.js';
import {
  clientMemoryRead,
  clientMemoryWindow,
  clientMemoryWrite,
  close,
  mapClientMemory,
  memfdCreate,
  mmap,
  munmap,
  sealSize,
  unmapClientMemory,
  type ClientMemoryHandle,
} from './syscalls.js';

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

/** Bytes of one view window of ClientMemory; windows start every half window. */
export const CLIENT_WINDOW = 1024 * 1024 * 1024;

/**
 * A client's memory mapped here for DMA (see mapClientMemory): the caller
 * has made sure it cannot shrink under the mapping. Reads and writes are
 * copies checked against the mapping; view() hands out zero-copy views
 * from windows of CLIENT_WINDOW bytes made on first use (starting every
 * half window, so any view up to half a window fits in one), all detached
 * by unmap().
 */
export class ClientMemory {
  readonly size: number;
  readonly writable: boolean;
  readonly #handle: ClientMemoryHandle;
  /** Every window made, by `${offset}+${length}`: unmap() detaches them all. */
  readonly #windows = new Map<string, Uint8Array>();
  #unmapped = false;

  private constructor(handle: ClientMemoryHandle, size: number, writable: boolean) {
    this.#handle = handle;
    this.size = size;
    this.writable = writable;
  }

  /** Maps `length` bytes of `fd` from `offset`; the fd may be closed at once. */
  static map(fd: number, offset: number, length: number, writable: boolean): ClientMemory {
    return new ClientMemory(mapClientMemory(fd, offset, length, writable), length, writable);
  }

  /** True once unmap() ran. */
  get unmapped(): boolean {
    return this.#unmapped;
  }

  /** Copies dest.byteLength bytes at `offset` into dest. */
  read(offset: number, dest: Uint8Array): void {
    clientMemoryRead(this.#handle, offset, dest);
  }

  /** Copies src to `offset`. */
  write(offset: number, src: Uint8Array): void {
    clientMemoryWrite(this.#handle, offset, src);
  }

  /**
   * A view of [offset, offset+length), valid until unmap() (then length 0).
   * EPERM for a read-only mapping, EFAULT outside it.
   */
  view(offset: number, length: number): Uint8Array {
    const half = CLIENT_WINDOW / 2;
    // A short view comes from the window starting at a multiple of half a
    // window that holds it whole; a long one gets a window of its own.
    let start = offset;
    let size = length;
    if (length <= half) {
      start = Math.floor(offset / half) * half;
      if (offset + length > start + CLIENT_WINDOW) start += half;
      size = Math.min(this.size, start + CLIENT_WINDOW) - start;
      if (offset + length > start + size) {
        throw new VfioError('EFAULT', `view [${offset}, +${length}) is outside the ${this.size} bytes mapped`);
      }
    }
    const key = `${start}+${size}`;
    let window = this.#windows.get(key);
    if (window === undefined) {
      window = new Uint8Array(clientMemoryWindow(this.#handle, start, size));
      this.#windows.set(key, window);
    }
    return window.subarray(offset - start, offset - start + length);
  }

  /** Detaches every view and unmaps. Idempotent. */
  unmap(): void {
    if (this.#unmapped) return;
    this.#unmapped = true;
    const windows = [...this.#windows.values()].map((w) => w.buffer as ArrayBuffer);
    this.#windows.clear();
    unmapClientMemory(this.#handle, windows);
  }
}
