/** VFIO_USER_DEVICE_GET_IRQ_INFO. */
import { decodeIrqInfoRequest } from '../decoder.js';
import { encodeIrqInfoReply } from '../serializer.js';
import { after, type CommandHandler } from './handler.js';

export const getIrqInfo: CommandHandler = (session, req) => {
  const q = decodeIrqInfoRequest(req.body, req.fds, session.decode);
  return after(session.file.getIrqInfo(q.index), (info) => {
    session.reply(req, encodeIrqInfoReply(req.msgId, info));
  });
};
