/**
 * VFIO_USER_DEVICE_GET_REGION_INFO: the region's info and capabilities
 * (sparse mmap areas, type) cut to the client's argsz (two-pass: a reply
 * that does not fit carries the argsz it needs), and the fd backing the
 * mmap-able parts with a complete reply. A client that takes no fds
 * (max_msg_fds 0) is shown the region as not mmap-able.
 */
import type { RegionInfo } from '../../base/uapi.js';
import { RegionFlags } from '../../base/uapi.js';
import { decodeRegionInfoRequest } from '../decoder.js';
import { encodeRegionInfoReply } from '../serializer.js';
import { after, type CommandHandler, type Request, type Session } from './handler.js';

export const getRegionInfo: CommandHandler = (session, req) => {
  const q = decodeRegionInfoRequest(req.body, req.fds, session.decode);
  return after(session.file.getRegionInfo(q.index), (info) => {
    if ((info.flags & RegionFlags.MMAP) === 0) return send(session, req, info, q.argsz);
    if (session.negotiated!.clientMaxMsgFds === 0) {
      return send(session, req, { ...info, flags: info.flags & ~RegionFlags.MMAP, sparseMmap: undefined, mmap: undefined }, q.argsz);
    }
    if (info.mmap !== undefined) return send(session, req, info, q.argsz);
    return after(session.file.mmap(q.index), (mmap) => send(session, req, { ...info, mmap }, q.argsz));
  });
};

function send(session: Session, req: Request, info: RegionInfo, argsz: number): void {
  const { message, sendFd } = encodeRegionInfoReply(req.msgId, info, argsz);
  session.reply(req, message, sendFd && info.mmap !== undefined ? [info.mmap.fd] : undefined);
}
