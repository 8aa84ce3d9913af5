/**
 * VFIO_USER_DMA_MAP: client memory the device may reach. With an fd the
 * memory is mapped here (in 1 GiB pieces, each its own mapping of the
 * address space) and the fd closed at once: the mapping holds the memory.
 * Without one, every access becomes a DMA_READ/DMA_WRITE message to the
 * client. (The session remembers mappings made of several pieces, so
 * DMA_UNMAP can refuse to cut one.) EEXIST for an overlap, ENOSPC past max_dma_maps, EOVERFLOW for an
 * address beyond 2^53.
 */
import { VfioError } from '../../base/errors.js';
import { DmaProt } from '../../base/uapi.js';
import type { IoAddressSpace } from '../../iommufd/address-space.js';
import { closeFds } from '../../native/index.js';
import { decodeDmaMap } from '../decoder.js';
import { MAP_CHUNK, mapClientMemory, MessageDmaBacking, type MappedDmaBacking } from '../client-memory.js';
import type { CommandHandler } from './handler.js';

export const dmaMap: CommandHandler = (session, req) => {
  const m = decodeDmaMap(req.body, req.fds, session.decode);
  const ioas = session.iommufd!.ioas;
  const iova = exact(m.address, 'address');
  const size = exact(m.size, 'size');
  const prot = (m.readable ? DmaProt.READ : 0) | (m.writable ? DmaProt.WRITE : 0);
  if (m.fd === null) {
    ioas.map(iova, size, new MessageDmaBacking(session.dma!, iova, size), { prot });
  } else {
    const [fd] = session.takeFds(req);
    let pieces: MappedDmaBacking[];
    try {
      pieces = mapClientMemory(fd!, exact(m.offset, 'offset'), size, m.writable);
    } finally {
      closeFds([fd!]);
    }
    mapPieces(ioas, iova, pieces, prot);
    if (pieces.length > 1) session.pieced.set(iova, size);
  }
  session.replyEmpty(req);
};

function exact(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VfioError('EOVERFLOW', `VFIO_USER_DMA_MAP: ${what} 0x${v.toString(16)} is beyond 2^53`);
  return Number(v);
}

// All pieces or none: a failure unmaps the pieces already in, releases the rest.
function mapPieces(ioas: IoAddressSpace, iova: number, pieces: MappedDmaBacking[], prot: number): void {
  let i = 0;
  try {
    for (; i < pieces.length; i++) ioas.map(iova + i * MAP_CHUNK, pieces[i]!.size, pieces[i]!, { prot });
  } catch (err) {
    for (let j = 0; j < i; j++) ioas.unmap(iova + j * MAP_CHUNK, pieces[j]!.size);
    for (let j = i; j < pieces.length; j++) pieces[j]!.release();
    throw err;
  }
}
