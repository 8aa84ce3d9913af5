/**
 * UnixServer: a listening UNIX socket that hands each accepted connection
 * over as a UnixSocket. One per vfio-user device.
 */
import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import { isVfioError, toVfioError, VfioError } from '../../base/errors.js';
import { acceptUnix, close, closeFds, connectUnix, FdWatcher, listenUnix, READABLE } from '../../native/index.js';
import { UnixSocket } from './unix-socket.js';

/** Accepts per readable event, so a connection storm cannot starve established clients. */
const MAX_ACCEPTS_PER_EVENT = 64;
/** Pause after an accept failure (typically EMFILE) before trying again. */
const ACCEPT_RETRY_MS = 100;

/** Options of UnixServer.listen. */
export interface ListenOptions {
  /** listen() backlog; default 128. */
  backlog?: number;
}

/**
 * Binds `path`, replacing a stale socket file (one nobody listens on, left
 * by a crashed server) but never a live server's socket or a non-socket.
 */
function bindPath(path: string, backlog: number): number {
  try {
    return listenUnix(path, backlog);
  } catch (err) {
    if (!isVfioError(err, 'EADDRINUSE')) throw err;
  }
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch {
    return listenUnix(path, backlog); // gone meanwhile
  }
  if (!stats.isSocket()) {
    throw new VfioError('EADDRINUSE', `${path} exists and is not a socket; refusing to replace it`);
  }
  let probe: number;
  try {
    probe = connectUnix(path);
  } catch (err) {
    if (isVfioError(err, 'ECONNREFUSED')) {
      unlinkSync(path);
      return listenUnix(path, backlog);
    }
    if (!isVfioError(err, 'EAGAIN')) throw err; // EAGAIN: alive, backlog full
    probe = -1;
  }
  if (probe >= 0) close(probe);
  throw new VfioError('EADDRINUSE', `another server is already listening on ${path}`);
}

export class UnixServer {
  /** A new connection; the server's default closes it at once. */
  onConnection: (socket: UnixSocket) => void = (socket) => socket.destroy();
  /**
   * A failure to accept (EMFILE, ENOMEM...). Accepting pauses briefly and
   * resumes by itself; the waiting client is not lost.
   */
  onError: (err: VfioError) => void = () => {};

  /** The socket file this server listens on. */
  readonly path: string;
  readonly #fd: number;
  readonly #watcher: FdWatcher;
  /** Identity of our socket file, so close() never unlinks a successor's. */
  readonly #dev: number;
  readonly #ino: number;
  #retry: NodeJS.Timeout | undefined;
  #refed = true;
  #closed = false;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
    try {
      const stats = lstatSync(path);
      this.#dev = stats.dev;
      this.#ino = stats.ino;
      this.#watcher = new FdWatcher(fd, () => this.#acceptSome());
    } catch (err) {
      closeFds([fd]);
      try {
        unlinkSync(path); // bindPath just created it
      } catch {
        // Not there: nothing to undo.
      }
      throw toVfioError(err);
    }
    this.#watcher.start(READABLE);
  }

  /**
   * Listens on `path` (mode 0600). A stale socket file there is replaced;
   * EADDRINUSE if a server answers there or the path is not a socket.
   */
  static listen(path: string, options: ListenOptions = {}): UnixServer {
    return new UnixServer(path, bindPath(path, options.backlog ?? 128));
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Keeps the process alive while listening (the default). */
  ref(): void {
    this.#refed = true;
    if (this.#closed) return;
    this.#watcher.ref();
    this.#retry?.ref();
  }

  /** Lets the process exit while nothing but this server is waiting. */
  unref(): void {
    this.#refed = false;
    if (this.#closed) return;
    this.#watcher.unref();
    this.#retry?.unref();
  }

  /**
   * Stops accepting and removes the socket file (if it is still ours).
   * Accepted connections live on. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#watcher.close();
    closeFds([this.#fd]);
    try {
      const stats = lstatSync(this.path);
      if (stats.dev === this.#dev && stats.ino === this.#ino) unlinkSync(this.path);
    } catch {
      // Already removed: nothing to do.
    }
  }

  #acceptSome(): void {
    for (let i = 0; i < MAX_ACCEPTS_PER_EVENT && !this.#closed; i++) {
      let fd: number;
      try {
        fd = acceptUnix(this.#fd);
      } catch (err) {
        this.#pauseAccepting(toVfioError(err));
        return;
      }
      if (fd < 0) return;
      let socket: UnixSocket;
      try {
        socket = new UnixSocket(fd);
      } catch (err) {
        this.onError(toVfioError(err));
        continue;
      }
      this.onConnection(socket);
    }
  }

  /**
   * The failed connection stays queued and the listener stays readable, so
   * polling on would spin; wait a little instead.
   */
  #pauseAccepting(err: VfioError): void {
    this.#watcher.stop();
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#closed) this.#watcher.start(READABLE);
    }, ACCEPT_RETRY_MS);
    if (!this.#refed) this.#retry.unref();
    this.onError(err);
  }
}
