/**
 * The datagram of sd_notify(3): what tells systemd a Type=notify service
 * is ready. Node has no AF_UNIX datagram sockets; the addon sends one.
 */
import { addon } from './addon.js';

/**
 * Sends `message` as one datagram to the AF_UNIX socket at `path` (a
 * leading `@` names an abstract socket, as in NOTIFY_SOCKET). Throws
 * VfioError naming the failure (ECONNREFUSED when nobody listens there,
 * EAGAIN when its queue is full).
 */
export const notifyDatagram: (path: string, message: ArrayBufferView) => void = addon.notifyDatagram;
