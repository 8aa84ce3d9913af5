/**
 * VFIO_USER_DEVICE_SET_IRQS, every data/action combination: eventfds
 * (assign, or de-assign when none are sent), bools, none, and disabling a
 * whole index (DATA_NONE|ACTION_TRIGGER, count 0). Received fds must be
 * eventfds (EINVAL otherwise). The device keeps the notifiers; the session
 * closes the ones a later request replaces or disables, and the rest when
 * the client goes. If the device refuses, the new notifiers are closed.
 */
import type { SetIrqsRequest } from '../../base/uapi.js';
import { decodeSetIrqs } from '../decoder.js';
import type { EventfdNotifier } from '../eventfd-notifier.js';
import { isPromiseLike } from '../../core/maybe-async.js';
import type { CommandHandler } from './handler.js';

export const setIrqs: CommandHandler = (session, req) => {
  const m = decodeSetIrqs(req.body, req.fds, session.decode);
  const { index, start, count, action } = m;
  let request: SetIrqsRequest;
  let values: (EventfdNotifier | null)[] | null = null;
  switch (m.data) {
    case 'none':
      request = { index, start, count, action, data: 'none' };
      break;
    case 'bool':
      request = { index, start, count, action, data: 'bool', values: m.values };
      break;
    case 'eventfd': {
      const fds = session.takeFds(req);
      values = fds.length === 0 ? new Array<null>(count).fill(null) : session.notifiers.adopt(fds, { index, action, start });
      request = { index, start, count, action, data: 'eventfd', values };
      break;
    }
  }
  const done = (): void => {
    if (values !== null) session.notifiers.assigned(index, action, start, values);
    else if (m.data === 'none' && count === 0) session.notifiers.disabled(index);
    session.replyEmpty(req);
  };
  const fail = (err: unknown): never => {
    for (const n of values ?? []) n?.close();
    throw err;
  };
  let result: void | Promise<void>;
  try {
    result = session.file.setIrqs(request);
  } catch (err) {
    return fail(err);
  }
  return isPromiseLike(result) ? result.then(done, fail) : done();
};
