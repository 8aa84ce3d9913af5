/**
 * An iommufd context: what a client binds its device files to. It owns the
 * address spaces the client builds with DMA map/unmap; a device file bound to
 * it reaches client memory only through them. Destroying the context (the
 * client went away) unmaps everything, after telling every driver.
 */
import { IoAddressSpace, type AddressSpaceOptions } from './address-space.js';

let nextContextId = 1;

export class IommufdContext {
  /** Unique per process; handy in logs and hot-reset ownership checks. */
  readonly id = nextContextId++;
  /** The address space device files attach to when they bind. */
  readonly ioas: IoAddressSpace;
  private destroyed = false;

  constructor(options: AddressSpaceOptions = {}) {
    this.ioas = new IoAddressSpace(options);
  }

  get alive(): boolean {
    return !this.destroyed;
  }

  /** Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.ioas.destroy();
  }
}
