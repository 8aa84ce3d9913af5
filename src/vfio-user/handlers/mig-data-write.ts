/** VFIO_USER_MIG_DATA_WRITE: migration data in, while the device is resuming. */
import { decodeMigDataWrite } from '../decoder.js';
import { after, type CommandHandler } from './handler.js';

export const migDataWrite: CommandHandler = (session, req) => {
  const m = decodeMigDataWrite(req.body, req.fds, session.decode);
  return after(session.file.migrationDataWrite(m.data), () => session.replyEmpty(req));
};
