/**
 * VFIO_USER_MIG_DATA_READ: up to `size` bytes of the device's migration
 * stream; a shorter reply tells the client the stream is drained for now.
 * A device without migration refuses (EINVAL, as libvfio-user).
 */
import { VfioError } from '../../base/errors.js';
import { decodeMigDataRead } from '../decoder.js';
import { encodeMigDataReadReply } from '../serializer.js';
import { after, type CommandHandler } from './handler.js';

export const migDataRead: CommandHandler = (session, req) => {
  const m = decodeMigDataRead(req.body, req.fds, session.decode);
  return after(session.file.migrationDataRead(m.size), (data) => {
    if (data.length > m.size) {
      throw new VfioError('EIO', `VFIO_USER_MIG_DATA_READ: the device returned ${data.length} bytes for ${m.size} asked`);
    }
    session.reply(req, encodeMigDataReadReply(req.msgId, data));
  });
};
