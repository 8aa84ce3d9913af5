/**
 * VFIO_USER_DEVICE_GET_REGION_IO_FDS: uvfio's devices offer no ioeventfds
 * yet, so an implemented region answers with no sub-regions (as
 * libvfio-user does for a region without any) and one the device does not
 * implement with EINVAL.
 */
import { VfioError } from '../../base/errors.js';
import { decodeRegionIoFdsRequest } from '../decoder.js';
import { encodeRegionIoFdsReply } from '../serializer.js';
import type { CommandHandler } from './handler.js';

export const getRegionIoFds: CommandHandler = (session, req) => {
  const q = decodeRegionIoFdsRequest(req.body, req.fds, session.decode);
  if (session.shape!.regionFlags(q.index) === 0) {
    throw new VfioError('EINVAL', `VFIO_USER_DEVICE_GET_REGION_IO_FDS: region ${q.index} is not implemented`);
  }
  session.reply(req, encodeRegionIoFdsReply(req.msgId, { index: q.index, subRegions: [] }, q.argsz).message);
};
