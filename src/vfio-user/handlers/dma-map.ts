/**
 * VFIO_USER_DMA_MAP: client memory the device may reach. Without an fd,
 * every access becomes a DMA_READ/DMA_WRITE message to the client. With
 * one, iommufd's fdBacking decides how it is reached so that nothing the
 * client does to the file later can kill or stall the server: a
 * size-sealed memfd is mapped here (once, whatever its size: no piece is
 * mapped before every check passed), another tmpfs file is read and
 * written with pread/pwrite, anything else is served by messages as if no
 * fd had come (logged), and an fd that is not a regular file is EINVAL.
 * EEXIST for an overlap, ENOSPC past the client's or the daemon's budgets
 * (dma-maps, dma-maps-total, dma-bytes, dma-bytes-total, client-fds),
 * EOVERFLOW for an address beyond 2^53.
 */
import { VfioError } from '../../base/errors.js';
import { DmaProt } from '../../base/uapi.js';
import type { DmaBacking } from '../../iommufd/dma-backing.js';
import { fdBacking } from '../../iommufd/fd-backing.js';
import { decodeDmaMap } from '../decoder.js';
import { MessageDmaBacking } from '../client-memory.js';
import type { CommandHandler } from './handler.js';

export const dmaMap: CommandHandler = (session, req) => {
  const m = decodeDmaMap(req.body, req.fds, session.decode);
  const ioas = session.iommufd!.ioas;
  const iova = exact(m.address, 'address');
  const size = exact(m.size, 'size');
  const offset = exact(m.offset, 'offset');
  const prot = (m.readable ? DmaProt.READ : 0) | (m.writable ? DmaProt.WRITE : 0);
  // Room, overlap and count first: nothing is mapped before they pass.
  ioas.checkMap(iova, size);
  let backing: DmaBacking;
  if (m.fd === null) {
    backing = new MessageDmaBacking(session.dma!, iova, size);
  } else {
    // From here the fd is fdBacking's: kept or closed, whatever happens.
    const [fd] = session.takeFds(req);
    const reach = fdBacking(fd!, offset, size, m.writable, session.budgets);
    if (reach.backing === null) session.notice('vfio-user: DMA_MAP memory served by DMA_READ/DMA_WRITE messages', { iova, size, why: reach.why });
    backing = reach.backing ?? new MessageDmaBacking(session.dma!, iova, size);
  }
  try {
    ioas.map(iova, size, backing, { prot });
  } catch (err) {
    backing.release();
    throw err;
  }
  session.replyEmpty(req);
};

function exact(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VfioError('EOVERFLOW', `VFIO_USER_DMA_MAP: ${what} 0x${v.toString(16)} is beyond 2^53`);
  return Number(v);
}
