/**
 * VFIO_USER_DEVICE_GET_INFO. CAPS is cleared: a vfio-user device info has
 * no room for a capability chain.
 */
import { DeviceFlags } from '../../base/uapi.js';
import { decodeDeviceInfoRequest } from '../decoder.js';
import { encodeDeviceInfoReply } from '../serializer.js';
import { after, type CommandHandler } from './handler.js';

export const deviceGetInfo: CommandHandler = (session, req) => {
  decodeDeviceInfoRequest(req.body, req.fds);
  return after(session.file.getInfo(), (info) => {
    session.reply(req, encodeDeviceInfoReply(req.msgId, { ...info, flags: info.flags & ~DeviceFlags.CAPS }));
  });
};
