/**
 * VFIO_USER_REGION_WRITE: the device takes the data as a view of the
 * received message (no copy); the 32-byte reply reuses the reply buffer.
 * Posted writes (NO_REPLY, as QEMU sends them) get no reply. A large write
 * to plain device memory may have been received straight into it (the
 * session placed it: Request.placed): it has landed, only the reply is left.
 */
import { u32 } from '../buffer-reader.js';
import { decodeRegionAccess, decodeRegionWriteHead } from '../decoder.js';
import { Command, Size } from '../protocol.js';
import { writeRegionWriteReply } from '../serializer.js';
import type { CommandHandler, Request, Session } from './handler.js';

const SIZE = 32;

export const regionWrite: CommandHandler = (session, req) => {
  if (req.placed != null) {
    const a = decodeRegionWriteHead(req.body, Size.REGION_ACCESS + u32(req.body, 12), session.decode, session.access);
    writeRegionWriteReply(session.replyBuffer(SIZE), req.msgId, a.offset, a.region, a.count);
    session.reply(req, session.replyView(SIZE));
    return;
  }
  const a = decodeRegionAccess(Command.REGION_WRITE, req.body, req.fds, session.decode, session.access);
  const { offset, region, count } = a;
  const result = session.file.regionWrite(region, offset, a.data);
  // No closure unless the device answers later: this is every MMIO write's path.
  if (result === undefined) return replyWritten(session, req, offset, region, count);
  return result.then(() => replyWritten(session, req, offset, region, count));
};

function replyWritten(session: Session, req: Request, offset: number, region: number, count: number): void {
  writeRegionWriteReply(session.replyBuffer(SIZE), req.msgId, offset, region, count);
  session.reply(req, session.replyView(SIZE));
}
