/**
 * VFIO_USER_VERSION: the handshake. It must come first and only once.
 * Success binds the client's file (open_device runs for the device's first
 * client) and answers with the negotiated version and capabilities, plus
 * the twin socket when one was set up. Any failure — bad JSON, a wrong
 * type, another major version, open_device refusing — is answered with its
 * errno and ends the session, as the spec has a server close a connection
 * it cannot serve.
 */
import { VfioError } from '../../base/errors.js';
import { closeFds } from '../../native/index.js';
import { decodeVersionCommand } from '../decoder.js';
import { negotiate } from '../negotiation.js';
import { encodeVersionReply } from '../serializer.js';
import type { CommandHandler } from './handler.js';

export const version: CommandHandler = async (session, req) => {
  if (session.negotiated !== null) {
    throw new VfioError('EINVAL', 'VFIO_USER_VERSION: the session has already negotiated its version');
  }
  let twin: number | null = null;
  try {
    const proposal = decodeVersionCommand(req.body, req.fds);
    const agreed = negotiate(proposal, session.limits);
    twin = await session.establish(agreed);
    const capabilities = twin === null ? agreed.reply : { ...agreed.reply, twinSocket: { supported: true, fdIndex: 0 } };
    session.reply(req, encodeVersionReply(req.msgId, { ...agreed.version, capabilities }), twin === null ? undefined : [twin]);
  } catch (err) {
    session.endAfterReply();
    throw err;
  } finally {
    // The socket sent it or keeps a duplicate: the client's end is not ours.
    if (twin !== null) closeFds([twin]);
  }
};
