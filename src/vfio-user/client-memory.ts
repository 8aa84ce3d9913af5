/**
 * Client memory reached by VFIO_USER_DMA_READ/WRITE messages: what stands
 * behind a DMA_MAP without an fd (or with one that cannot be reached
 * safely, see iommufd/fd-backing.ts), as a DmaBacking of the client's
 * address space, released exactly once when the mapping goes.
 */
import { VfioError } from '../base/errors.js';
import type { DmaBacking } from '../iommufd/dma-backing.js';

/** Reaches client memory by messages (see dma-channel.ts). */
export interface DmaMessenger {
  read(address: number, dest: Uint8Array): Promise<void>;
  write(address: number, src: Uint8Array): Promise<void>;
}

/** Client memory the server cannot map: every access is a DMA_READ/DMA_WRITE. */
export class MessageDmaBacking implements DmaBacking {
  readonly reach = 'messages';
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
