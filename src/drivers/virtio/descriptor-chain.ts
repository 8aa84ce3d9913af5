/**
 * One request of a virtqueue: the buffers of a descriptor chain, split into
 * what the device reads (the driver's "out" part, first) and what it writes
 * (the "in" part, after). A device must not rely on how the driver cut
 * them (2.7.4), so the chain is read and written as two byte streams; every
 * byte goes through the client's DMA access.
 */
import { VfioError } from '../../base/errors.js';
import type { DmaAccess } from '../../iommufd/address-space.js';

/** One guest buffer: `len` bytes at guest address `addr`. */
export interface Segment {
  readonly addr: number;
  readonly len: number;
}

export class DescriptorChain {
  readonly readableBytes: number;
  readonly writableBytes: number;

  constructor(
    /** Head descriptor index: the id the used ring gives back. */
    readonly head: number,
    readonly readable: readonly Segment[],
    readonly writable: readonly Segment[],
    private readonly dma: DmaAccess,
  ) {
    this.readableBytes = readable.reduce((n, s) => n + s.len, 0);
    this.writableBytes = writable.reduce((n, s) => n + s.len, 0);
  }

  /** Copies `dest.length` bytes of the readable stream from `offset`. */
  read(offset: number, dest: Uint8Array): Promise<void> {
    return transfer(this.readable, offset, dest, (addr, part) => this.dma.read(addr, part), 'read');
  }

  /** Writes `src` into the writable stream at `offset`. */
  write(offset: number, src: Uint8Array): Promise<void> {
    return transfer(this.writable, offset, src, (addr, part) => this.dma.write(addr, part), 'write');
  }
}

async function transfer(
  segments: readonly Segment[],
  offset: number,
  buf: Uint8Array,
  one: (addr: number, part: Uint8Array) => Promise<void>,
  what: string,
): Promise<void> {
  let skip = offset;
  let done = 0;
  for (const s of segments) {
    if (done === buf.length) return;
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    const n = Math.min(s.len - skip, buf.length - done);
    await one(s.addr + skip, buf.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  if (done < buf.length) {
    throw new VfioError('EPROTO', `virtio: a ${what} of ${buf.length} bytes at ${offset} runs past the chain's buffers`);
  }
}
