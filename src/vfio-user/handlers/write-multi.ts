/**
 * VFIO_USER_REGION_WRITE_MULTI: up to 200 coalesced writes of at most
 * 8 bytes, done in order, all checked before the first is done. The reply
 * (when asked for; QEMU posts these) counts the writes.
 */
import { decodeWriteMulti } from '../decoder.js';
import { encodeWriteMultiReply } from '../serializer.js';
import { isPromiseLike } from '../../core/maybe-async.js';
import type { CommandHandler } from './handler.js';

export const writeMulti: CommandHandler = (session, req) => {
  const entries = decodeWriteMulti(req.body, req.fds, session.decode);
  let i = 0;
  const next = (): void | Promise<void> => {
    while (i < entries.length) {
      const e = entries[i++]!;
      const result = session.file.regionWrite(e.region, e.offset, e.data);
      if (isPromiseLike(result)) return result.then(next);
    }
    session.reply(req, encodeWriteMultiReply(req.msgId, entries.length));
  };
  return next();
};
