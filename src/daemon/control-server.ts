/**
 * The daemon's end of the control socket (see protocol.ts). Requests on one
 * connection are answered in order; connections run concurrently. No fds
 * travel here, so node:net is enough.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { VfioError, isVfioError, toVfioError } from '../base/errors.js';
import { closeFds, listenUnix } from '../native/index.js';
import type { Logger } from './log.js';
import { CONTROL_PROTOCOL_VERSION, LineDecoder, encodeLine, type ControlEvent, type ControlResponse } from './protocol.js';

/** What a request's handler may do besides answering. */
export interface ControlCall {
  /** Sends an event line before the response; dropped unless the request asked for events. */
  emit(event: unknown): void;
  /** The request asked for events (`"events":true`). */
  readonly events: boolean;
  /** Bytes written to the connection that its reader has not taken yet. */
  backlog(): number;
  /** Aborted when the connection the request came on closes. */
  readonly signal: AbortSignal;
}

/** A call for code run outside any connection: events go nowhere, nothing aborts. */
export const NO_CALL: ControlCall = { emit: () => {}, events: false, backlog: () => 0, signal: new AbortController().signal };

export interface ControlServerOptions {
  /** Socket path; created with mode 0600. */
  path: string;
  /** Runs one request; a throw becomes an error response. */
  handle: (op: string, args: unknown, call: ControlCall) => Promise<unknown>;
  log: Logger;
}

export class ControlServer {
  private readonly connections = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly options: ControlServerOptions,
    private readonly listenFd: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /**
   * Listens on `options.path` (mode 0600). A socket file left by a daemon
   * that died is replaced; one a live daemon answers on is EADDRINUSE.
   */
  static async listen(options: ControlServerOptions): Promise<ControlServer> {
    // Bind first, and look at a file in the way only when bind() fails: of
    // two daemons starting at once, the one that binds second then finds
    // the first alive. Probing first would let both see no daemon, and
    // the second unlink the first's fresh socket.
    let fd: number;
    try {
      fd = listenUnix(options.path);
    } catch (err) {
      if (!isVfioError(err, 'EADDRINUSE')) throw listenError(err, options.path);
      await removeStaleSocket(options.path);
      try {
        fd = listenUnix(options.path);
      } catch (again) {
        throw listenError(again, options.path);
      }
    }
    chmodSync(options.path, 0o600);
    return ControlServer.adopt(fd, options);
  }

  /**
   * Serves on a listening socket: ours (listen()) or the one a daemon
   * taking over was handed. Takes ownership of `fd`. Node did not bind
   * it, so closing it never unlinks the path: a daemon handing over
   * stops listening (stopListening()) while the next one listens there.
   */
  static async adopt(fd: number, options: ControlServerOptions): Promise<ControlServer> {
    const server = createServer({ allowHalfOpen: false });
    const self = new ControlServer(server, options.path, options, fd);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      closeFds([fd]);
      throw listenError(err, options.path);
    });
    server.on('error', (err) => options.log.error('control socket error', { error: err }));
    return self;
  }

  /** The listening socket (a takeover hands a duplicate on). */
  get fd(): number {
    return this.listenFd;
  }

  /** Stops accepting, leaving the socket file (the next daemon listens on it) and the connections there are. */
  stopListening(): void {
    this.server.close();
  }

  /** Stops accepting, ends every connection and removes the socket file. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
    try {
      unlinkSync(this.path);
    } catch {
      // net.Server.close() removes it already on most platforms
    }
  }

  private accept(socket: Socket): void {
    this.connections.add(socket);
    const gone = new AbortController();
    socket.on('close', () => {
      this.connections.delete(socket);
      gone.abort();
    });
    socket.on('error', () => socket.destroy());
    const decoder = new LineDecoder();
    // Requests of one connection run one after the other, so answers keep their order.
    let queue = Promise.resolve();
    const then = (step: () => Promise<void> | void) => {
      // A step that throws must not reject the chain: that would be an
      // unhandled rejection, which ends the daemon.
      queue = queue.then(step).catch((err) => this.options.log.error('control connection failed', { error: toVfioError(err) }));
    };
    const onData = (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (err) {
        // The framing is lost: whatever follows cannot be trusted to be a
        // request, so nothing more is read, let alone run. The error is the
        // last answer, after those of the requests already queued.
        socket.off('data', onData);
        then(() => {
          this.reply(socket, failure(0, toVfioError(err)));
          socket.end();
        });
        return;
      }
      for (const line of lines) {
        if (line.trim() === '') continue;
        then(async () => this.reply(socket, await this.answer(line, socket, gone.signal)));
      }
    };
    socket.on('data', onData);
  }

  private async answer(line: string, socket: Socket, signal: AbortSignal): Promise<ControlResponse> {
    let request: { v?: unknown; id?: unknown; op?: unknown; args?: unknown; events?: unknown };
    try {
      request = JSON.parse(line) as typeof request;
    } catch {
      return failure(0, new VfioError('EPROTO', 'a control request is not valid JSON'));
    }
    if (request === null || typeof request !== 'object') {
      return failure(0, new VfioError('EPROTO', 'a control request must be a JSON object'));
    }
    const id = typeof request.id === 'number' && Number.isSafeInteger(request.id) ? request.id : 0;
    if (request.v !== CONTROL_PROTOCOL_VERSION) {
      return failure(
        id,
        new VfioError(
          'EPROTO',
          `control protocol version ${String(request.v)} is not ${CONTROL_PROTOCOL_VERSION}: the command line and the daemon come from different uvfio versions`,
        ),
      );
    }
    if (typeof request.op !== 'string') return failure(id, new VfioError('EPROTO', 'a control request needs an "op"'));
    const events = request.events === true;
    const call: ControlCall = {
      emit: (event) => {
        if (events) this.reply(socket, { id, event });
      },
      events,
      backlog: () => socket.writableLength,
      signal,
    };
    try {
      const result = await this.options.handle(request.op, request.args, call);
      return { id, ok: true, result };
    } catch (err) {
      const e = toVfioError(err);
      const level = e.message.startsWith('internal error') ? 'error' : 'info';
      this.options.log.log(level, 'request failed', { op: request.op, error: e, ...(level === 'error' ? { stack: (err as Error)?.stack } : {}) });
      return failure(id, e);
    }
  }

  private reply(socket: Socket, response: ControlResponse | ControlEvent): void {
    if (!socket.destroyed && socket.writable) socket.write(encodeLine(response));
  }
}

function failure(id: number, err: VfioError): ControlResponse {
  return { id, ok: false, error: { code: err.code, message: err.message } };
}

function listenError(err: unknown, path: string): VfioError {
  return new VfioError(toVfioError(err).code, `cannot listen on ${path}: ${(err as Error).message}`, { cause: err });
}

/** Unlinks what is at `path` if nobody answers on it; EADDRINUSE if a daemon does. */
async function removeStaleSocket(path: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) {
    throw new VfioError('EADDRINUSE', `another uvfio daemon is already serving ${path}; stop it first or choose another --runtime-dir`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw toVfioError(err);
  }
}
