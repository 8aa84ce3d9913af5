/** VFIO_USER_DEVICE_RESET: no body, no reply payload. */
import { decodeDeviceReset } from '../decoder.js';
import { after, type CommandHandler } from './handler.js';

export const deviceReset: CommandHandler = (session, req) => {
  decodeDeviceReset(req.body, req.fds);
  return after(session.file.reset(), () => session.replyEmpty(req));
};
