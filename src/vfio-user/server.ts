/**
 * The vfio-user server: puts every device of a VfioCore on a UNIX socket of
 * its own, `${socketDir}/${device.name}.sock` (mode 0600), and serves each
 * client that connects there as one open file of the device.
 *
 * It follows the core: a device registered (before or after the server was
 * made) gets its socket at once; a device whose unregistration begins loses
 * it (the file is unlinked, nobody new can connect) while the clients
 * already connected keep being served until they leave, which is what lets
 * the unregistration finish (the device's request op asks them to, through
 * the REQ interrupt). Several clients may hold one device at once, each
 * with its own file, address space and interrupts.
 *
 * What clients there are, who they are and what they did is in clients();
 * what they do as it happens is on the channels of trace.ts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { VfioDevice } from '../core/device.js';
import type { DeviceFile } from '../core/device-file.js';
import { toVfioError, VfioError } from '../base/errors.js';
import type { VfioCore } from '../core/vfio-core.js';
import { clientInfo, type ClientInfo } from './client-info.js';
import { peerIdentity, type ClientIdentity } from './client-identity.js';
import { ServerBudgets } from './limits.js';
import { OverBudget } from '../base/budget.js';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './negotiation.js';
import { adoptedSocket, type ServerLog, type SessionOptions, VfioUserSession } from './session.js';
import type { SessionState } from './session-state.js';
import { closeFds } from '../native/index.js';
import { SocketTransport } from './transport/socket-transport.js';
import type { Transport } from './transport/transport.js';
import { UnixServer } from './transport/unix-server.js';
import type { UnixSocket } from './transport/unix-socket.js';

export interface VfioUserServerOptions {
  core: VfioCore;
  /** Where the sockets go; created (mode 0700) when missing. */
  socketDir: string;
  /** Serve every registered device without being asked (default true); otherwise only serve(). */
  follow?: boolean;
  /** What the server accepts from clients; defaults in DEFAULT_SERVER_LIMITS. */
  limits?: Partial<ServerLimits>;
  /** Where failures that cannot go on the wire are told; silent by default. */
  log?: ServerLog;
}

const SILENT: ServerLog = { info: () => {}, warn: () => {} };
/** sun_path holds 108 bytes including the NUL. */
const MAX_SOCKET_PATH = 107;
/**
 * Requests a client's socket may read in the loop turn of its readable
 * event, one at a time after each answer, each only if it comes before
 * anything else wants the loop (UnixSocket.setLinger). A vCPU waits for
 * every MMIO reply, so its next request comes right after; serving it
 * without a turn of the loop saves Node's wake-up and loop phases. 16, as
 * many as one event may read: no client holds the loop longer than that.
 */
const LINGER_READS = 16;

/**
 * What a daemon takeover moves of one served device (exportDevice →
 * adoptDevice): its listening socket and its sessions. Fds are indexes
 * into the fd list that travels with it.
 */
export interface DeviceServingState {
  /** the listening socket; null when the device was not listening (its unregistration began) */
  listener: number | null;
  sessions: SessionState[];
}

/** Serves the devices of one VfioCore over vfio-user (see the file comment); close() when done. */
export class VfioUserServer {
  readonly core: VfioCore;
  readonly socketDir: string;
  readonly limits: Readonly<ServerLimits>;
  /** What all clients together may make the server hold. */
  readonly #budgets: ServerBudgets;
  readonly #log: ServerLog;
  readonly #listeners = new Map<VfioDevice, UnixServer>();
  readonly #sessions = new Map<VfioDevice, Set<VfioUserSession>>();
  readonly #follow: boolean;
  #closing: Promise<void> | null = null;
  /** A takeover is under way: no connection is accepted, no session serves (freeze()). */
  #frozen = false;

  readonly #onRegistered = (device: VfioDevice): void => {
    try {
      this.#listen(device);
    } catch (err) {
      this.#log.warn('vfio-user: cannot serve a device', { device: device.name, error: toVfioError(err).message });
    }
  };
  readonly #onUnregistering = (device: VfioDevice): void => {
    this.stopServing(device);
    // Nothing can ask a client that never completed VERSION to let go (it
    // has no REQ eventfd), and nothing it holds is worth waiting for.
    for (const s of this.#sessions.get(device) ?? []) {
      if (!s.bound) void s.close('its device is going away and it never completed VFIO_USER_VERSION');
    }
  };
  /** Refused connections not logged yet (one line a second at most). */
  #refusedUnlogged = 0;
  #refusedLoggedAt = -Infinity;

  constructor(options: VfioUserServerOptions) {
    this.core = options.core;
    this.socketDir = options.socketDir;
    this.limits = Object.freeze({ ...DEFAULT_SERVER_LIMITS, ...options.limits });
    this.#budgets = new ServerBudgets(this.limits);
    this.#log = options.log ?? SILENT;
    this.#follow = options.follow ?? true;
    mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    this.core.on('unregistering', this.#onUnregistering);
    if (this.#follow) {
      this.core.on('registered', this.#onRegistered);
      for (const device of this.core.devices()) if (device.state === 'registered') this.#onRegistered(device);
    }
  }

  /** The socket a device is served on, by name; undefined while it is not served. */
  socketPath(name: string): string | undefined {
    const device = this.core.device(name);
    return device !== undefined && this.#listeners.has(device) ? this.#pathOf(device) : undefined;
  }

  /**
   * Makes sure `device` is served and resolves once a client can connect.
   * ENODEV for a device that is not registered (or a closed server),
   * EINVAL for a name that cannot be a socket file name, EADDRINUSE when a
   * live server already listens on its path.
   */
  serve(device: VfioDevice): Promise<void> {
    try {
      if (this.#closing !== null) throw new VfioError('ENODEV', 'the vfio-user server is closed');
      this.#listen(device);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(toVfioError(err));
    }
  }

  /** Stops accepting clients for `device` and removes its socket file; its clients stay. */
  stopServing(device: VfioDevice): void {
    const listener = this.#listeners.get(device);
    if (listener === undefined) return;
    this.#listeners.delete(device);
    listener.close();
  }

  /** Clients connected to `device` (or to every device). */
  connectionCount(device?: VfioDevice): number {
    if (device !== undefined) return this.#sessions.get(device)?.size ?? 0;
    let n = 0;
    for (const set of this.#sessions.values()) n += set.size;
    return n;
  }

  /**
   * The clients connected to `device` (or to every device), oldest first:
   * identity, counters, DMA mappings (see ClientInfo). A snapshot, made on
   * each call.
   */
  clients(device?: VfioDevice): ClientInfo[] {
    const sets = device !== undefined ? [this.#sessions.get(device) ?? new Set<VfioUserSession>()] : this.#sessions.values();
    const out: ClientInfo[] = [];
    for (const set of sets) for (const c of set) out.push(clientInfo(c));
    return out.sort((a, b) => a.id - b.id);
  }

  /**
   * Drops the client whose ClientInfo.id is `id`, as if it had hung up:
   * its file closes (close_device for a device's last), its mappings and
   * eventfds go. `reason` is logged. Resolves true once it is torn down,
   * false when no such client is connected.
   */
  async dropClient(id: number, reason = 'dropped by the server'): Promise<boolean> {
    for (const set of this.#sessions.values()) {
      for (const c of set) {
        if (c.id !== id) continue;
        this.#log.info('vfio-user: dropping a client', { device: c.file.device.name, client: id, pid: c.identity.pid, reason });
        await c.close(reason);
        return true;
      }
    }
    return false;
  }

  /**
   * Stops listening everywhere and drops every client, which closes their
   * files (what a pending unregistration waits for). Resolves once every
   * connection is torn down. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  // ---- takeover ---------------------------------------------------------------

  /**
   * A daemon takeover begins: no connection is accepted (they wait in the
   * listening sockets' backlogs) and every session freezes
   * (VfioUserSession.freeze). Resolves once every session is idle or gone;
   * then exportDevice() may run. thaw() undoes it.
   */
  async freeze(): Promise<void> {
    this.#frozen = true;
    for (const listener of this.#listeners.values()) listener.pause();
    const all: Promise<void>[] = [];
    for (const set of this.#sessions.values()) for (const c of set) all.push(c.freeze());
    await Promise.all(all);
  }

  /**
   * Accepts and serves again: the takeover was called off, or (in the
   * process that took over) it committed. Sessions serve the commands
   * that waited first, in order.
   */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    for (const listener of this.#listeners.values()) listener.resume();
    for (const set of this.#sessions.values()) for (const c of set) c.thaw();
  }

  /**
   * What a takeover moves of `device`, the server being frozen: its
   * listening socket and every session that can be moved (one that is
   * ending is not: it ends with this process), their fds appended to
   * `fds` (still this server's: the caller sends duplicates on).
   */
  exportDevice(device: VfioDevice, fds: number[]): DeviceServingState {
    if (!this.#frozen) throw new VfioError('EBUSY', 'the vfio-user server is not frozen for a takeover');
    const listener = this.#listeners.get(device);
    const sessions: SessionState[] = [];
    for (const c of this.#sessions.get(device) ?? []) if (c.handsOver) sessions.push(c.exportState(fds));
    return { listener: listener === undefined ? null : fds.push(listener.fd) - 1, sessions };
  }

  /**
   * Serves `device` as the previous process did, from what its
   * exportDevice() gave: the same listening socket (at this server's path
   * for the device) and the same sessions, each restored (see
   * VfioUserSession.restore). Nothing is accepted or served until thaw().
   * Takes ownership of every fd in `fds`: those the state names are kept,
   * the others closed. On failure the sessions adopted so far are closed
   * and the fds not yet taken too.
   */
  async adoptDevice(device: VfioDevice, state: DeviceServingState, fds: readonly number[]): Promise<void> {
    const left = new Set(fds.keys());
    const take = (i: number): number => {
      if (!left.delete(i)) throw new VfioError('EINVAL', `the takeover state names fd ${i} twice, or one it does not carry`);
      return fds[i]!;
    };
    const adopted: VfioUserSession[] = [];
    try {
      if (this.#closing !== null || device.core !== this.core || device.state !== 'registered') {
        throw new VfioError('ENODEV', `${device.name}: not a registered device of this server's core`);
      }
      if (!this.#frozen) throw new VfioError('EBUSY', 'adopt a device into a frozen server only');
      if (state.listener !== null) {
        if (this.#listeners.has(device)) throw new VfioError('EEXIST', `${device.name} is served already`);
        this.#watch(device, UnixServer.adopt(take(state.listener), this.#pathOf(device)));
      }
      for (const s of state.sessions) {
        const transport = SocketTransport.adopt(adoptedSocket(s.socket, take), { linger: LINGER_READS });
        const session = this.#open(device, transport, s.identity, {
          connectedAt: s.connectedAt,
          frozen: true,
          ...(s.versionDeadline === null ? {} : { versionDeadline: s.versionDeadline }),
        });
        adopted.push(session);
        await session.restore(s, take);
      }
    } catch (err) {
      await Promise.all(adopted.map((c) => c.close('the takeover failed')));
      // The socket file stays: the process that handed it over listens there still.
      if (state.listener !== null && !left.has(state.listener)) {
        this.#listeners.get(device)?.close({ keepFile: true });
        this.#listeners.delete(device);
      }
      throw toVfioError(err);
    } finally {
      closeFds([...left].map((i) => fds[i]!));
    }
  }

  async #closeAll(): Promise<void> {
    this.core.off('registered', this.#onRegistered);
    this.core.off('unregistering', this.#onUnregistering);
    for (const device of [...this.#listeners.keys()]) this.stopServing(device);
    const all: Promise<void>[] = [];
    for (const set of this.#sessions.values()) for (const c of set) all.push(c.close('the server closed'));
    await Promise.all(all);
  }

  #pathOf(device: VfioDevice): string {
    return join(this.socketDir, `${device.name}.sock`);
  }

  #listen(device: VfioDevice): void {
    if (this.#listeners.has(device)) return;
    if (device.core !== this.core || device.state !== 'registered') {
      throw new VfioError('ENODEV', `${device.name}: not a registered device of this server's core`);
    }
    if (device.name === '.' || device.name === '..' || /[/\0]/.test(device.name)) {
      throw new VfioError('EINVAL', `${JSON.stringify(device.name)} cannot name a socket file`);
    }
    const path = this.#pathOf(device);
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new VfioError('EINVAL', `socket path ${path} is longer than the ${MAX_SOCKET_PATH} bytes a UNIX socket allows`);
    }
    const listener = UnixServer.listen(path);
    this.#watch(device, listener);
    if (this.#frozen) listener.pause();
  }

  /** Serves `device`'s connections from `listener`. */
  #watch(device: VfioDevice, listener: UnixServer): void {
    listener.onConnection = (socket) => this.#accept(device, socket);
    listener.onError = (err) => this.#log.warn('vfio-user: accept failed', { device: device.name, error: err.message });
    this.#listeners.set(device, listener);
  }

  /**
   * Serves a client of `device` that reaches it through `transport` rather
   * than the device's socket (an in-memory transport, say): a session like
   * any accepted one, listed by clients(). The transport is the session's
   * from here on, even when this throws: ENODEV for a device that is not
   * registered here (or a closed server), EUSERS past the device-clients or
   * clients limit. Returns the session's id.
   */
  attach(device: VfioDevice, transport: Transport, identity?: ClientIdentity): number {
    if (this.#closing !== null || device.core !== this.core) {
      transport.destroy();
      throw new VfioError('ENODEV', `${device.name}: not a device this server serves`);
    }
    const self: ClientIdentity = { pid: process.pid, uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, command: null };
    return this.#open(device, transport, identity ?? self).id;
  }

  #accept(device: VfioDevice, socket: UnixSocket): void {
    if (this.#closing !== null) {
      socket.destroy();
      return;
    }
    const transport = new SocketTransport(socket, { linger: LINGER_READS });
    const identity = peerIdentity(transport.fd);
    try {
      this.#open(device, transport, identity);
    } catch (err) {
      // Over a limit, or unregistration began between listen and accept.
      if (err instanceof OverBudget) this.#refused(device, identity, err);
    }
  }

  /** Logs connections refused by a limit, naming the first client of each second; the rest are counted. */
  #refused(device: VfioDevice, identity: ClientIdentity, err: OverBudget): void {
    const now = Date.now();
    if (now - this.#refusedLoggedAt < 1_000) {
      this.#refusedUnlogged++;
      return;
    }
    this.#log.warn('vfio-user client refused: over a limit', {
      device: device.name,
      pid: identity.pid,
      uid: identity.uid,
      limit: err.limit,
      error: err.message,
      ...(this.#refusedUnlogged > 0 ? { alsoRefused: this.#refusedUnlogged } : {}),
    });
    this.#refusedLoggedAt = now;
    this.#refusedUnlogged = 0;
  }

  /**
   * A session for a client of `device` over `transport`, counted against
   * the client limits; the transport is the session's, or destroyed when
   * this throws (OverBudget EUSERS past a limit, ENODEV once the device's
   * unregistration began).
   */
  #open(
    device: VfioDevice,
    transport: Transport,
    identity: ClientIdentity,
    more: Pick<SessionOptions, 'connectedAt' | 'versionDeadline' | 'frozen'> = {},
  ): VfioUserSession {
    const budget = this.#budgets.deviceClients(device);
    let file: DeviceFile;
    try {
      budget.take(1, `${device.name}: clients`);
      try {
        file = device.openFile();
      } catch (err) {
        budget.release(1);
        throw err;
      }
    } catch (err) {
      transport.destroy();
      throw toVfioError(err);
    }
    let set = this.#sessions.get(device);
    if (set === undefined) this.#sessions.set(device, (set = new Set()));
    const sessions = set;
    const session = new VfioUserSession({
      ...more,
      file,
      transport,
      identity,
      limits: this.limits,
      budgets: this.#budgets.client(),
      log: this.#log,
      onClosed: (c) => {
        budget.release(1);
        sessions.delete(c);
        if (sessions.size === 0 && this.#sessions.get(device) === sessions) this.#sessions.delete(device);
      },
    });
    sessions.add(session);
    return session;
  }
}
