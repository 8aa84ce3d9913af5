/**
 * The one way a command reaches its handler, on every transport: the
 * header rule (checkCommand), the handshake first, then the handler of
 * handlers/index.ts. A failure before the handshake ends the session after
 * its error reply, as the spec has a server close a connection it cannot
 * serve.
 */
import { OverBudget } from '../base/budget.js';
import { VfioError } from '../base/errors.js';
import { checkCommand } from './header.js';
import { HANDLERS } from './handlers/index.js';
import type { Request, Session } from './handlers/handler.js';
import { Command, commandName } from './protocol.js';

/** Serves `req` on `session`: what its handler returns (a promise when it went asynchronous), or a throw for the error reply. */
export function dispatch(session: Session, req: Request): void | Promise<void> {
  const handshook = session.negotiated !== null;
  try {
    checkCommand(req.msgId, req.cmd, req.flags, 'server');
    if (!handshook && req.cmd !== Command.VERSION) {
      throw new VfioError('EINVAL', `${commandName(req.cmd)} before VFIO_USER_VERSION: the handshake must come first`);
    }
  } catch (err) {
    if (!handshook) session.endAfterReply();
    throw err;
  }
  if (req.fds.length > session.limits.maxMsgFds) {
    throw new OverBudget(
      'EINVAL',
      'msg-fds',
      `${commandName(req.cmd)}: ${req.fds.length} file descriptors in one message, more than max_msg_fds ${session.limits.maxMsgFds}`,
    );
  }
  const handler = HANDLERS[req.cmd];
  if (handler === undefined) throw new VfioError('ENOSYS', `message ${req.msgId}: unknown command ${req.cmd}`);
  return handler(session, req);
}
