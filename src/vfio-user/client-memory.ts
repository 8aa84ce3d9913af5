/**
 * What stands behind a client's DMA_MAP: its memory mapped into this process
 * when the message carried an fd, or VFIO_USER_DMA_READ/WRITE messages to
 * the client when it did not. Either becomes a DmaBacking of the client's
 * IOMMU address space, released exactly once when the mapping goes.
 */
import { VfioError } from '../base/errors.js';
import type { DmaBacking } from '../iommufd/dma-backing.js';
import { MappedMemory } from '../native/index.js';

/**
 * Largest piece of client memory mapped as one ArrayBuffer: Node 20 caps a
 * typed array at 4 GiB, and QEMU maps all RAM above 4 GiB in one DMA_MAP.
 */
export const MAP_CHUNK = 1024 * 1024 * 1024;
const PAGE = 4096;

/** A piece of client memory mapped here; release() unmaps it. */
export class MappedDmaBacking implements DmaBacking {
  readonly memory: Uint8Array;
  readonly size: number;
  readonly #mapping: MappedMemory;

  constructor(mapping: MappedMemory, skip: number, size: number) {
    this.#mapping = mapping;
    this.memory = mapping.bytes.subarray(skip, skip + size);
    this.size = size;
  }

  release(): void {
    this.#mapping.close();
  }
}

/**
 * Maps `size` bytes of the client's `fd` from `offset`, in pieces of at most
 * MAP_CHUNK bytes (in order). The fd stays the caller's: each mapping holds
 * its memory, so the fd may be closed at once. An offset that is not page
 * aligned is mapped from the page below. A read-only mapping is still
 * mapped writable when the fd allows it, so that a driver's stray write
 * through a view cannot fault the process; the address space enforces the
 * client's permissions either way.
 */
export function mapClientMemory(fd: number, offset: number, size: number, writable: boolean): MappedDmaBacking[] {
  if (!Number.isSafeInteger(offset + size)) {
    throw new VfioError('EOVERFLOW', `DMA_MAP: file range at ${offset} of ${size} bytes goes beyond 2^53`);
  }
  const pieces: MappedDmaBacking[] = [];
  try {
    for (let done = 0; done < size; done += MAP_CHUNK) {
      const length = Math.min(MAP_CHUNK, size - done);
      const at = offset + done;
      const skip = at % PAGE;
      pieces.push(new MappedDmaBacking(mapFd(fd, at - skip, skip + length, writable), skip, length));
    }
  } catch (err) {
    for (const p of pieces) p.release();
    throw err;
  }
  return pieces;
}

function mapFd(fd: number, offset: number, length: number, writable: boolean): MappedMemory {
  try {
    return MappedMemory.map(fd, offset, length, { read: true, write: true });
  } catch (err) {
    if (writable) throw err;
    return MappedMemory.map(fd, offset, length, { read: true, write: false });
  }
}

/** Reaches client memory by messages (see dma-channel.ts). */
export interface DmaMessenger {
  read(address: number, dest: Uint8Array): Promise<void>;
  write(address: number, src: Uint8Array): Promise<void>;
}

/** Client memory the server cannot map: every access is a DMA_READ/DMA_WRITE. */
export class MessageDmaBacking implements DmaBacking {
  readonly memory = null;
  #released = false;

  constructor(
    private readonly messenger: DmaMessenger,
    /** the client address of byte 0 */
    readonly address: number,
    readonly size: number,
  ) {}

  read(offset: number, dest: Uint8Array): Promise<void> {
    if (this.#released) return Promise.reject(gone());
    return this.messenger.read(this.address + offset, dest);
  }

  write(offset: number, src: Uint8Array): Promise<void> {
    if (this.#released) return Promise.reject(gone());
    return this.messenger.write(this.address + offset, src);
  }

  release(): void {
    this.#released = true;
  }
}

function gone(): VfioError {
  return new VfioError('EFAULT', 'DMA: the mapping was removed');
}
