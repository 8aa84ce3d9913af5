/**
 * VFIO_USER_REGION_READ, the hot path: decoding fills the session's reused
 * access object, the device reads straight into the reused reply buffer
 * behind the 32-byte header, and the reply is one write. No buffer is
 * allocated per message while the device answers synchronously.
 */
import { decodeRegionAccess } from '../decoder.js';
import { Command } from '../protocol.js';
import { writeRegionReadReplyHeader } from '../serializer.js';
import type { CommandHandler } from './handler.js';

const HEAD = 32;

export const regionRead: CommandHandler = (session, req) => {
  const a = decodeRegionAccess(Command.REGION_READ, req.body, req.fds, session.decode, session.access);
  const count = a.count;
  writeRegionReadReplyHeader(session.replyBuffer(HEAD + count), req.msgId, a.offset, a.region, count);
  const result = session.file.regionRead(a.region, a.offset, session.replySlice(HEAD, count));
  if (result === undefined) {
    session.reply(req, session.replyView(HEAD + count));
    return;
  }
  return result.then(() => session.reply(req, session.replyView(HEAD + count)));
};
