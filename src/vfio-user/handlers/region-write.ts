/**
 * VFIO_USER_REGION_WRITE: the device takes the data as a view of the
 * received message (no copy); the 32-byte reply reuses the reply buffer.
 * Posted writes (NO_REPLY, as QEMU sends them) get no reply.
 */
import { decodeRegionAccess } from '../decoder.js';
import { Command } from '../protocol.js';
import { writeRegionWriteReply } from '../serializer.js';
import type { CommandHandler } from './handler.js';

const SIZE = 32;

export const regionWrite: CommandHandler = (session, req) => {
  const a = decodeRegionAccess(Command.REGION_WRITE, req.body, req.fds, session.decode, session.access);
  const { offset, region, count } = a;
  const result = session.file.regionWrite(region, offset, a.data);
  const done = (): void => {
    writeRegionWriteReply(session.replyBuffer(SIZE), req.msgId, offset, region, count);
    session.reply(req, session.replyView(SIZE));
  };
  if (result === undefined) return done();
  return result.then(done);
};
