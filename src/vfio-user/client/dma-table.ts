/**
 * The client's memory the device may reach, as the client keeps it: each
 * DMA_MAP'd region with its bytes, and the serving of the server's
 * VFIO_USER_DMA_READ / DMA_WRITE against them (the path taken for memory
 * mapped without an fd; memory mapped with one may be served this way too).
 */
import { VfioError } from '../../base/errors.js';
import type { MappedMemory } from '../../native/index.js';
import type { DmaLayout } from '../context.js';
import { decodeDmaRead, decodeDmaWrite } from '../decoder.js';
import type { Frame } from '../framer.js';
import { checkCommand } from '../header.js';
import { Command } from '../protocol.js';
import { encodeDmaReadReply, encodeDmaWriteReply, encodeEmptyReply, encodeErrorReply } from '../serializer.js';

/** One region of client memory mapped for DMA. */
export interface ClientDmaRegion {
  readonly iova: number;
  readonly size: number;
  /** the memory itself, as the client sees it */
  readonly bytes: Uint8Array;
  readonly readable: boolean;
  readonly writable: boolean;
  /** true when the server got no fd and must use DMA messages */
  readonly byMessages: boolean;
  /** the shared mapping behind `bytes` (memfd-backed regions); the table unmaps it on removal */
  readonly memory: MappedMemory | null;
}

/** What the server asked of this client through DMA messages so far. */
export interface DmaServed {
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  failures: number;
}

export class ClientDmaTable {
  readonly #regions: ClientDmaRegion[] = [];
  readonly served: DmaServed = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, failures: 0 };

  get regions(): readonly ClientDmaRegion[] {
    return this.#regions;
  }

  add(region: ClientDmaRegion): void {
    this.#regions.push(region);
    this.#regions.sort((a, b) => a.iova - b.iova);
  }

  /** Forgets (and unmaps) every region inside [iova, iova+size); returns how many. */
  remove(iova: number, size: number): number {
    let n = 0;
    for (let i = this.#regions.length - 1; i >= 0; i--) {
      const r = this.#regions[i]!;
      if (r.iova >= iova && r.iova + r.size <= iova + size) {
        this.#regions.splice(i, 1);
        r.memory?.close();
        n++;
      }
    }
    return n;
  }

  removeAll(): void {
    for (const r of this.#regions) r.memory?.close();
    this.#regions.length = 0;
  }

  /**
   * Answers a command from the server (a DMA_READ or DMA_WRITE): the reply
   * to send back, an error reply when it is no command a client serves
   * (EINVAL, ENOSYS), malformed (EINVAL, E2BIG), not mapped (EFAULT) or not
   * permitted (EPERM).
   */
  serve(frame: Frame, layout: DmaLayout, maxDataXferSize: number): Uint8Array {
    const ctx = { dmaLayout: layout, maxDataXferSize };
    try {
      checkCommand(frame.msgId, frame.cmd, frame.flags, 'client');
      if (frame.cmd === Command.DMA_READ) {
        const req = decodeDmaRead(frame.body, frame.fds, ctx);
        const src = this.#find(req.address, req.count, 'read');
        this.served.reads++;
        this.served.bytesRead += req.count;
        return encodeDmaReadReply(frame.msgId, req.address, src, layout);
      }
      if (frame.cmd === Command.DMA_WRITE) {
        const req = decodeDmaWrite(frame.body, frame.fds, ctx);
        this.#find(req.address, req.count, 'write').set(req.data);
        this.served.writes++;
        this.served.bytesWritten += req.count;
        // QEMU answers with the bare header; libvfio-user's peers expect address and count.
        return layout === 'qemu' ? encodeEmptyReply(frame.msgId, Command.DMA_WRITE) : encodeDmaWriteReply(frame.msgId, req.address, req.count);
      }
      throw new VfioError('ENOSYS', `command ${frame.cmd} is not one a client serves`);
    } catch (err) {
      this.served.failures++;
      const errno = err instanceof VfioError ? err.errno : 5;
      return encodeErrorReply(frame.msgId, frame.cmd, errno);
    }
  }

  // The bytes of [address, address+count) inside one region that allows `op`.
  #find(address: bigint, count: number, op: 'read' | 'write'): Uint8Array {
    const at = Number(address);
    for (const r of this.#regions) {
      if (at >= r.iova && at + count <= r.iova + r.size && BigInt(at) === address) {
        if (op === 'read' ? !r.readable : !r.writable) {
          throw new VfioError('EPERM', `DMA ${op} of a region mapped without ${op} permission`);
        }
        return r.bytes.subarray(at - r.iova, at - r.iova + count);
      }
    }
    throw new VfioError('EFAULT', `DMA ${op} of [0x${address.toString(16)}, +${count}) outside every mapped region`);
  }
}
