/**
 * The video memory all mbochs devices of one parent draw on (the kernel
 * sample's `mem` module parameter, 256 MB by default). A device takes its
 * type's share when probed and gives it back when released; the types'
 * available_instances follow what is left.
 */
import { VfioError } from '../../base/errors.js';

export const MIB = 1024 * 1024;
export const DEFAULT_POOL_BYTES = 256 * MIB;

/** Byte accounting of one parent's video memory: take() at probe, give() at release. */
export class MemoryPool {
  readonly totalBytes: number;
  #free: number;

  constructor(totalBytes: number = DEFAULT_POOL_BYTES) {
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      throw new VfioError('EINVAL', `a memory pool needs a non-negative byte count, not ${totalBytes}`);
    }
    this.totalBytes = totalBytes;
    this.#free = totalBytes;
  }

  /** Bytes no device holds. */
  get freeBytes(): number {
    return this.#free;
  }

  /** Bytes the devices hold. */
  get usedBytes(): number {
    return this.totalBytes - this.#free;
  }

  /** How many more shares of `bytes` fit in what is left. */
  available(bytes: number): number {
    checkShare(bytes);
    return Math.floor(this.#free / bytes);
  }

  /** Takes `bytes`; ENOSPC when less than that is left (nothing is taken then). */
  take(bytes: number): void {
    checkShare(bytes);
    if (bytes > this.#free) {
      throw new VfioError('ENOSPC', `video memory pool exhausted: ${bytes / MIB} MiB wanted, ${this.#free / MIB} MiB of ${this.totalBytes / MIB} MiB left`);
    }
    this.#free -= bytes;
  }

  /** Gives back what take() took. Giving back more than was taken is a bug and throws. */
  give(bytes: number): void {
    checkShare(bytes);
    if (this.#free + bytes > this.totalBytes) throw new Error(`memory pool overflow: ${bytes} bytes given back that were never taken`);
    this.#free += bytes;
  }
}

function checkShare(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new VfioError('EINVAL', `a pool share must be a positive byte count, not ${bytes}`);
  }
}
