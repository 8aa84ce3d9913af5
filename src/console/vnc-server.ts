/**
 * A VNC server for each display device: a TCP listener on the loopback
 * address, on a port the system picks, serving that device's screen
 * read-only to any standard viewer (RFB 3.8, security None). It listens
 * while the device runs; the device going away closes the listener and
 * every viewer.
 *
 * No password: like QEMU's `-vnc 127.0.0.1:N`, any local user who can
 * reach the loopback port can watch. `uvfio daemon --no-vnc` turns it off.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { VfioError, toVfioError } from '../base/errors.js';
import type { ConsoleLog } from './console-log.js';
import { CONSOLE_LIMITS } from './limits.js';
import type { ScreenFeed } from './screen-feed.js';
import { VncSession } from './vnc-session.js';

/** Where VNC servers listen. */
export const VNC_HOST = '127.0.0.1';

export interface VncServerOptions {
  /** The screen served. */
  feed: ScreenFeed;
  /** Desktop name shown by viewers. */
  name: string;
  log: ConsoleLog;
  /** Address to listen on; default VNC_HOST. */
  host?: string;
  /** Port; default 0 (the system picks one). */
  port?: number;
  /** Default CONSOLE_LIMITS.vncHandshakeTimeoutMs. */
  handshakeTimeoutMs?: number;
}

export class VncServer {
  private readonly sessions = new Set<VncSession>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** `HOST:PORT` it listens on. */
    readonly address: string,
    private readonly options: VncServerOptions,
  ) {
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) => options.log.error('vnc server error', { error: err }));
  }

  static async listen(options: VncServerOptions): Promise<VncServer> {
    const host = options.host ?? VNC_HOST;
    const server = createServer({ noDelay: true });
    // Viewers past the limit are refused in words; connections past twice
    // the limit are closed at once, so a flood holds no more sockets.
    server.maxConnections = 2 * CONSOLE_LIMITS.maxVncClients;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: options.port ?? 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new VfioError(toVfioError(err).code, `cannot listen for VNC on ${host}: ${(err as Error).message}`, { cause: err });
    });
    const a = server.address();
    if (a === null || typeof a === 'string') throw new VfioError('EIO', 'the VNC listener has no TCP address');
    return new VncServer(server, `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`, options);
  }

  /** Viewers connected now (handshaking or watching). */
  get viewers(): number {
    return this.sessions.size;
  }

  /** Bytes written to viewers and not yet taken by their sockets: what slow viewers make the server hold. */
  get queuedBytes(): number {
    let n = 0;
    for (const s of this.sockets) n += s.writableLength;
    return n;
  }

  /** Stops listening and disconnects every viewer. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const full = this.sessions.size >= CONSOLE_LIMITS.maxVncClients;
    const session: VncSession = new VncSession({
      socket,
      feed: this.options.feed,
      name: this.options.name,
      log: this.options.log,
      ...(this.options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: this.options.handshakeTimeoutMs }),
      ...(full ? { refuse: `too many viewers: at most ${CONSOLE_LIMITS.maxVncClients} per device` } : {}),
      onClose: () => this.sessions.delete(session),
    });
    this.sessions.add(session);
  }
}
