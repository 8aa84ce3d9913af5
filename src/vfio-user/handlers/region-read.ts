/**
 * VFIO_USER_REGION_READ, the hot path: decoding fills the session's reused
 * access object, the device reads straight into the reused reply buffer
 * behind the 32-byte header, and the reply is one write. No buffer is
 * allocated per message while the device answers synchronously. A large
 * read of plain device memory (VfioDevice.regionMemory) leaves straight
 * from it, behind the header: no copy at all in user space.
 */
import { decodeRegionAccess } from '../decoder.js';
import { Command } from '../protocol.js';
import { writeRegionReadReplyHeader } from '../serializer.js';
import type { CommandHandler } from './handler.js';

const HEAD = 32;
/** Reads of at least this many bytes try the device's memory first (below it a copy costs less than the view). */
export const FROM_MEMORY = 16 * 1024;

export const regionRead: CommandHandler = (session, req) => {
  const a = decodeRegionAccess(Command.REGION_READ, req.body, req.fds, session.decode, session.access);
  const count = a.count;
  if (count >= FROM_MEMORY) {
    const memory = session.file.regionMemory(a.region, a.offset, count, false);
    if (memory !== null) {
      writeRegionReadReplyHeader(session.replyBuffer(HEAD), req.msgId, a.offset, a.region, count);
      session.replyParts(req, session.replyView(HEAD), memory);
      return;
    }
  }
  writeRegionReadReplyHeader(session.replyBuffer(HEAD + count), req.msgId, a.offset, a.region, count);
  const result = session.file.regionRead(a.region, a.offset, session.replySlice(HEAD, count));
  if (result === undefined) {
    session.reply(req, session.replyView(HEAD + count));
    return;
  }
  return result.then(() => session.reply(req, session.replyView(HEAD + count)));
};
