/**
 * VFIO_USER_DMA_UNMAP: the client takes memory back, one range or ALL.
 * Drivers hear of it before the memory goes (the address space's dmaUnmap),
 * so nothing refers to it once the reply is out. The reply echoes the
 * request. SPDK's client sends its memory fd along with an unmap; like
 * libvfio-user, the server closes it rather than refusing the unmap.
 */
import { VfioError } from '../../base/errors.js';
import { MAX_IOVA_END } from '../../iommufd/address-space.js';
import { decodeDmaUnmap } from '../decoder.js';
import { encodeDmaUnmapReply } from '../serializer.js';
import type { CommandHandler } from './handler.js';

export const dmaUnmap: CommandHandler = (session, req) => {
  const u = decodeDmaUnmap(req.body, [], session.decode);
  const ioas = session.iommufd!.ioas;
  if (u.all) {
    ioas.unmapAll();
  } else {
    if (u.address + u.size > BigInt(MAX_IOVA_END)) {
      throw new VfioError('ENOENT', `VFIO_USER_DMA_UNMAP: nothing is mapped beyond 2^53`);
    }
    ioas.unmap(Number(u.address), Number(u.size));
  }
  session.reply(req, encodeDmaUnmapReply(req.msgId, u));
};
