/**
 * The uvfio daemon: one core, one mdev bus with the built-in parents, a
 * vfio-user socket per device under the runtime directory, the store of
 * definitions, and the control socket the command line talks to.
 *
 * Start: directories → control socket (which refuses a second daemon on
 * the same runtime directory) → stale device sockets removed → store →
 * parents → defaults (first run only) → auto-start → each device's socket
 * and QEMU option printed. Requests that come before the end of auto-start
 * are answered EAGAIN (the command line waits them out).
 *
 * With `http`, the web console listens too (src/console/), and unless
 * `vnc` is false every display device gets a VNC server on loopback.
 *
 * Stop (SIGINT/SIGTERM): the control socket and the console close (pages
 * and VNC viewers are disconnected), then every parent is
 * unregistered, which removes its devices the proper way — clients are
 * nudged with REQ and waited for, who holds what is logged after a second
 * — but only for so long: then the clients still there are named in a
 * warning and dropped, which lets the removals finish.
 */
import { randomUUID } from 'node:crypto';
import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { VfioDevice } from '../core/device.js';
import { VfioCore } from '../core/vfio-core.js';
import { VfioError, toVfioError } from '../base/errors.js';
import { ConsoleServer } from '../console/console-server.js';
import type { ListenAddress } from '../console/listen-address.js';
import { Screens } from '../console/screens.js';
import { MdevBus } from '../mdev/index.js';
import { ControlServer, type ControlCall } from './control-server.js';
import { HandOver, type HandOverOptions } from './hand-over.js';
import { takeOver, TakeoverFailed, type InjectedFailure, type TakenOver } from './take-over.js';
import { createVfioUserServer, type DeviceServer } from './device-server.js';
import type { Logger } from './log.js';
import type { BuiltinParent } from './parents.js';
import type { DaemonPaths } from './paths.js';
import { ensurePrivateDir } from './private-dir.js';
import { blockingAncestor, ensureSharedDir, shareSocket, SHARED_RUNTIME_DIR_MODE, SHARED_SOCKET_DIR_MODE, type SocketGroup } from './socket-group.js';
import { qemuDeviceArg } from './qemu.js';
import { MdevService } from './service.js';
import { SystemdNotifier } from './systemd-notify.js';
import { describeClient } from './describe-client.js';
import { awaitRelease } from './release.js';
import { within } from './within.js';
import { DefinitionStore } from './store.js';
import type { MdevDefinition } from './definition.js';
import { DEFAULT_LIMITS, type ResourceLimits } from '../vfio-user/limits.js';

export interface DaemonOptions {
  paths: DaemonPaths;
  log: Logger;
  parents: BuiltinParent[];
  /** Builds the server that puts each device on a socket in `socketDir`. Default: the vfio-user server. */
  createDeviceServer?: (core: VfioCore, socketDir: string, log: Logger, limits: Partial<ResourceLimits>) => DeviceServer;
  /**
   * Share the runtime directory and device sockets with this group
   * (`--socket-group`, see socket-group.ts). Default: owner only.
   */
  socketGroup?: SocketGroup;
  /** Share the control socket with `socketGroup` too (`--share-control`). */
  shareControl?: boolean;
  /** What clients may make the daemon hold (`--limit`); the rest at limits.ts's defaults. */
  limits?: Partial<ResourceLimits>;
  /** Seed a fresh store with each parent's default type. Default true. */
  seedDefaults?: boolean;
  /** How long shutdown waits for clients to let go before dropping them. Default 5 s. */
  shutdownTimeoutMs?: number;
  /** Tells systemd when the daemon is ready and stopping. Default: from NOTIFY_SOCKET. */
  notifier?: SystemdNotifier;
  /** Where the human summary goes. Default stdout. */
  print?: (text: string) => void;
  /** Serve the web console here (`--http`). Default: no console. */
  http?: ListenAddress;
  /** Serve each display device over VNC on loopback. Default true. */
  vnc?: boolean;
  /** Take over from the daemon serving these directories (`--takeover`) instead of starting afresh. */
  takeover?: boolean;
  /** How long each side of a takeover waits for the other. Default 10 s. */
  takeoverTimeoutMs?: number;
  /** Tests only: fail a takeover at one point (env UVFIO_TAKEOVER_FAIL). */
  injectTakeoverFailure?: InjectedFailure | undefined;
}

/** How long each side of a takeover waits for the other by default. */
export const DEFAULT_TAKEOVER_TIMEOUT_MS = 10_000;

export class Daemon {
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly paths: DaemonPaths,
    readonly core: VfioCore,
    readonly bus: MdevBus,
    readonly service: MdevService,
    private readonly store: DefinitionStore,
    private readonly deviceServer: DeviceServer,
    private readonly control: ControlServer,
    private readonly log: Logger,
    private readonly shutdownTimeoutMs: number,
    private readonly notifier: SystemdNotifier,
    readonly screens: Screens,
    readonly console: ConsoleServer | undefined,
  ) {}

  /**
   * Brings everything up; on failure, whatever was brought up is taken
   * down again. With `takeover`, takes over from the daemon serving the
   * same runtime directory instead (see take-over.ts): a failure before
   * the commit leaves that daemon serving, and this process must then exit
   * without closing anything by hand (its error says so: `committed` false).
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { paths, log, socketGroup: group } = options;
    if (options.shareControl && !group)
      throw new VfioError('EINVAL', '--share-control shares the control socket with --socket-group: name the group');
    if (group) {
      ensureSharedDir(paths.runtimeDir, group, SHARED_RUNTIME_DIR_MODE);
      ensureSharedDir(paths.socketDir, group, SHARED_SOCKET_DIR_MODE);
    } else {
      ensurePrivateDir(paths.runtimeDir);
      ensurePrivateDir(paths.socketDir);
    }
    ensurePrivateDir(paths.stateDir);
    let service: MdevService | undefined;
    let webConsole: ConsoleServer | undefined;
    /** A takeover is under way here (handing over): requests wait it out. */
    let handingOver = false;
    const controlOptions = {
      path: paths.controlSocket,
      log,
      handle: (op: string, args: unknown, call: ControlCall) => {
        if (op === 'ping') return Promise.resolve({ pid: process.pid, runtimeDir: paths.runtimeDir, stateDir: paths.stateDir });
        if (!service) return Promise.reject(new VfioError('EAGAIN', 'the daemon is still starting; try again in a moment'));
        if (handingOver) return Promise.reject(new VfioError('EAGAIN', 'the daemon is being replaced (a takeover); try again in a moment'));
        if (op === 'console') return Promise.resolve().then(() => consoleInfo(webConsole));
        return service.handle(op, args, call);
      },
    };
    // The control socket comes first: it is what tells us no other daemon
    // serves this runtime directory, before we touch its device sockets.
    // A takeover gets it from the daemon it replaces, at the commit.
    let control = options.takeover ? undefined : await ControlServer.listen(controlOptions);
    if (control && group && options.shareControl) {
      try {
        shareSocket(paths.controlSocket, group);
      } catch (err) {
        await control.close();
        throw err;
      }
    }
    log.info(options.takeover ? 'daemon starting: taking over' : 'daemon starting', {
      pid: process.pid,
      runtimeDir: paths.runtimeDir,
      stateDir: paths.stateDir,
      db: paths.dbFile,
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      ...(group ? { socketGroup: group.name, gid: group.gid, controlShared: options.shareControl === true } : {}),
    });
    const blocked = group && blockingAncestor(paths.runtimeDir, group);
    if (blocked) {
      log.warn('the socket group cannot reach the device sockets: a directory above the runtime directory does not let it pass', {
        socketGroup: group.name,
        dir: blocked.dir,
        mode: blocked.mode.toString(8).padStart(4, '0'),
      });
    }
    if (!options.takeover) removeStaleSockets(paths.socketDir, log);
    let store: DefinitionStore | undefined;
    let deviceServer: DeviceServer | undefined;
    let screens: Screens | undefined;
    let handOver: HandOver | undefined;
    let committed = false;
    try {
      store = DefinitionStore.open(paths.dbFile);
      const core = new VfioCore();
      const server = (deviceServer = (options.createDeviceServer ?? createVfioUserServer)(core, paths.socketDir, log, options.limits ?? {}));
      const shown = (screens = new Screens({ core, log, vnc: options.vnc ?? true }));
      /** Devices a takeover makes: their sockets and sessions are adopted, not served anew. */
      const adopting = new Set<string>();
      const serve = async (device: VfioDevice): Promise<void> => {
        if (adopting.has(device.name)) return;
        await server.serve(device);
        const socket = server.socketPath(device.name);
        if (group && socket !== undefined) shareSocket(socket, group);
        // A display device's VNC server listens before `start` answers, so `list` can say where.
        await shown.add(device);
      };
      const bus = new MdevBus({ core, serve });
      for (const p of options.parents) {
        bus.registerParent(p);
        log.info('parent registered', { parent: p.name, types: bus.parent(p.name)!.types.map((t) => t.id) });
      }
      if ((options.seedDefaults ?? true) && !options.takeover) {
        const seeded = store.seedOnce(() => defaultDefinitions(options.parents));
        if (seeded) log.info('new store: defined the default devices', { db: paths.dbFile });
      }
      const svc = new MdevService({ store, bus, server, vncAddress: (uuid) => shown.vncAddress(uuid), log });
      const notifier = options.notifier ?? SystemdNotifier.fromEnv(log);
      let takenOver: TakenOver | undefined;
      if (options.takeover) {
        const seam = server.takeover;
        if (!seam) throw new VfioError('EOPNOTSUPP', 'this device server cannot take over');
        takenOver = await takeOver(
          {
            path: paths.takeoverSocket,
            bus,
            server: seam,
            log,
            timeoutMs: options.takeoverTimeoutMs ?? DEFAULT_TAKEOVER_TIMEOUT_MS,
            inject: options.injectTakeoverFailure,
          },
          adopting,
        );
        committed = true;
        const resuming = performance.now();
        await takenOver.resume();
        adopting.clear();
        log.info('takeover: serving', {
          from: takenOver.fromPid,
          devices: takenOver.devices.length,
          frozenMs: takenOver.frozenMs,
          loadMs: takenOver.loadMs,
          resumeMs: Math.round((performance.now() - resuming) * 10) / 10,
        });
        control = await ControlServer.adopt(takenOver.controlFd, controlOptions);
        for (const m of takenOver.devices) await shown.add(m.device);
      } else {
        await svc.autostart();
      }
      if (options.http) {
        webConsole = await ConsoleServer.listen({
          address: options.http,
          service: svc,
          screens: shown,
          clients: (uuid) => server.clientDetails(uuid),
          log,
        });
      }
      service = svc;
      const daemon = new Daemon(paths, core, bus, svc, store, server, control!, log, options.shutdownTimeoutMs ?? 5_000, notifier, shown, webConsole);
      const seam = server.takeover;
      if (seam) {
        const handOverOptions: HandOverOptions = {
          path: paths.takeoverSocket,
          bus,
          server: seam,
          controlFd: () => daemon.control.fd,
          log,
          timeoutMs: options.takeoverTimeoutMs ?? DEFAULT_TAKEOVER_TIMEOUT_MS,
          setBusy: (on) => (handingOver = on),
          release: (pid) => daemon.release(pid),
          done: (pid) => daemon.handedOverTo(pid),
        };
        handOver = takenOver ? HandOver.adopt(takenOver.takeoverFd, handOverOptions) : HandOver.listen(handOverOptions);
        daemon.handOver = handOver;
      }
      daemon.printSummary(options.print ?? ((text) => process.stdout.write(text)));
      log.info('daemon ready', {
        control: paths.controlSocket,
        devices: bus.devices().length,
        ...(takenOver ? { tookOverFrom: takenOver.fromPid } : {}),
      });
      notifier.ready(daemon.statusLine());
      const tell = () => notifier.status(daemon.statusLine());
      bus.on('created', tell);
      bus.on('removed', tell);
      return daemon;
    } catch (err) {
      if (options.takeover && !committed) {
        // Everything here is a duplicate of what the serving daemon still
        // serves with: the caller exits, closing nothing by hand.
        throw new TakeoverFailed(toVfioError(err));
      }
      handOver?.close();
      await control?.close().catch(() => {});
      await webConsole?.close().catch(() => {});
      await screens?.close().catch(() => {});
      await deviceServer?.close().catch(() => {});
      store?.close();
      throw err;
    }
  }

  /** Settles once this daemon handed over to another (the process then exits 0); see hand-over.ts. */
  #handedOverTo: (pid: number) => void = () => {};
  readonly handedOver: Promise<number> = new Promise((resolve) => (this.#handedOverTo = resolve));
  private handOver: HandOver | undefined;

  /** The commit of a takeover: stop listening everywhere, leaving every socket file to the next daemon. */
  private release(pid: number): void {
    this.control.stopListening();
    void this.console?.close().catch(() => {});
    void this.screens.close().catch(() => {});
    this.notifier.mainPid(pid, `handed over to pid ${pid}`);
  }

  private handedOverTo(pid: number): void {
    this.log.info('daemon handed over: exiting', { to: pid });
    this.#handedOverTo(pid);
  }

  /** Takes everything down (see the file's comment). Calling it again returns the same promise. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.shutdown(reason);
    return this.stopping;
  }

  private async shutdown(reason: string): Promise<void> {
    const log = this.log;
    log.info('daemon stopping', { reason, devices: this.bus.devices().length });
    // A takeover under way ends first: called off, we stop as usual; committed, the process exits.
    await this.handOver?.idle();
    this.notifier.stopping(`stopping (${reason}): removing ${plural(this.bus.devices().length, 'device')}`);
    this.handOver?.close();
    await this.control.close();
    await this.console?.close();
    await this.screens.close();
    const uuids = this.bus.devices().map((m) => m.uuid);
    const removing = Promise.allSettled(this.bus.parents().map((p) => this.bus.unregisterParent(p)));
    // Who holds what is logged while we wait; at the timeout those clients
    // are named and dropped, which closes their device files so the
    // removals can finish.
    await awaitRelease({
      server: this.deviceServer,
      uuids,
      removed: removing,
      deadlineMs: this.shutdownTimeoutMs,
      dropReason: 'the daemon is shutting down',
      onWaiting: (uuid, clients, waitedMs) =>
        log.info('device held at shutdown: its clients were asked to let go', { uuid, waitedMs, clients: clients.map((c) => describeClient(c)) }),
      onDropping: (uuid, clients, waitedMs) =>
        log.warn('clients did not let go in time: dropping them', {
          uuid,
          timeoutMs: this.shutdownTimeoutMs,
          waitedMs,
          clients: clients.map((c) => describeClient(c)),
        }),
    });
    // Whatever is left goes with the server. Closing a file runs the
    // driver's close_device, which is bounded too: a driver that never
    // returns must not keep the daemon from exiting.
    const dropped = this.deviceServer.close().then(
      () => true,
      (err) => {
        log.error('device server close failed', { error: toVfioError(err) });
        return true;
      },
    );
    if ((await within(dropped, this.shutdownTimeoutMs)) === undefined) log.error('dropping clients did not finish in time');
    const results = await within(removing, this.shutdownTimeoutMs);
    if (results === undefined) log.error('devices are still held after their clients were dropped; exiting anyway');
    for (const r of results ?? []) {
      if (r.status === 'rejected') log.error('parent unregister failed', { error: toVfioError(r.reason) });
    }
    this.store.close();
    log.info('daemon stopped');
  }

  /** `3 devices served; control socket …`, for `systemctl status`. */
  statusLine(): string {
    return `${plural(this.bus.devices().length, 'device')} served; control socket ${this.paths.controlSocket}`;
  }

  /** For each running device: where its socket is and the QEMU option that attaches it. */
  private printSummary(print: (text: string) => void): void {
    const order = this.bus.parents();
    const devices = this.bus.devices().sort((a, b) => order.indexOf(a.parent) - order.indexOf(b.parent) || a.uuid.localeCompare(b.uuid));
    const lines = [`uvfio: ${this.statusLine()}`];
    for (const m of devices) {
      const socket = this.deviceServer.socketPath(m.uuid);
      lines.push(`  ${m.uuid}  ${m.parent.name}/${m.type.id}`);
      if (socket !== undefined) {
        lines.push(`    socket: ${socket}`);
        lines.push(`    qemu:   ${qemuDeviceArg(socket)}`);
      }
      const vnc = this.screens.vncAddress(m.uuid);
      if (vnc !== undefined) lines.push(`    vnc:    ${vnc}`);
    }
    if (this.console) lines.push(`console: http://${this.console.address}/ ("uvfio console" prints the URL with its token)`);
    print(`${lines.join('\n')}\n`);
  }
}

/** What `uvfio console` is told; ENOENT when the daemon serves no console. */
function consoleInfo(web: ConsoleServer | undefined): { url: string; address: string } {
  if (!web) throw new VfioError('ENOENT', 'this daemon serves no web console: start it with --http [ADDR:]PORT');
  return { url: web.url, address: web.address };
}

/** `1 device`, `3 devices`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * Device sockets a killed daemon left behind. Holding the control socket
 * proves no other daemon serves this directory, so they are ours to remove.
 */
function removeStaleSockets(dir: string, log: Logger): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!name.endsWith('.sock') || !lstatSync(path).isSocket()) continue;
    unlinkSync(path);
    log.info('removed a stale device socket', { socket: path });
  }
}

/** One auto-start definition of each parent's default type. */
function defaultDefinitions(parents: BuiltinParent[]): MdevDefinition[] {
  return parents
    .filter((p) => p.defaultType !== undefined)
    .map((p) => ({ uuid: randomUUID(), parent: p.name, mdevType: p.defaultType!, start: 'auto', attrs: [] }));
}

export interface RunDaemonOptions extends DaemonOptions {
  /** Signals that stop the daemon. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
  /** Called once the daemon serves (after "daemon ready"). */
  onReady?: () => void;
  /** Called once the daemon handed over to another: exit now, closing nothing (the CLI's process.exit(0)). */
  onHandedOver?: () => void;
}

/**
 * Runs a daemon until a stop signal, and resolves with the exit status: 0
 * after a clean stop. A second signal during shutdown exits at once (1).
 * It resolves 0 too once the daemon handed over to another (a takeover):
 * the caller must then exit at once, closing nothing.
 */
export async function runDaemon(options: RunDaemonOptions): Promise<number> {
  // Node prints process warnings (the bus reports overridden driver errors
  // that way) in its own format; as log lines they stay parseable.
  process.removeAllListeners('warning');
  process.on('warning', (w) => options.log.warn(w.message, { warning: w.name }));
  // Handlers go in before anything starts: 'daemon ready' is logged inside
  // Daemon.start(), and a signal that arrived between that line and a later
  // process.on() would meet Node's default action and kill the daemon
  // without a clean stop. A signal during start-up is kept and acted on
  // once the daemon is up.
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  let early: NodeJS.Signals | null = null;
  let handle = (signal: NodeJS.Signals): void => {
    early ??= signal;
  };
  const onSignal = (signal: NodeJS.Signals) => handle(signal);
  for (const s of signals) process.on(s, onSignal);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(options);
  } catch (err) {
    for (const s of signals) process.off(s, onSignal);
    throw err;
  }
  options.onReady?.();
  return new Promise<number>((resolve) => {
    let signalled = false;
    // Handed over: everything is the next daemon's; exit without closing anything.
    void daemon.handedOver.then(() => {
      for (const s of signals) process.off(s, onSignal);
      options.onHandedOver?.();
      resolve(0);
    });
    handle = (signal) => {
      if (signalled) {
        options.log.warn('second signal: exiting without waiting', { signal });
        process.exit(1);
      }
      signalled = true;
      daemon.stop(signal).then(
        () => {
          for (const s of signals) process.off(s, onSignal);
          resolve(0);
        },
        (err) => {
          options.log.error('shutdown failed', { error: toVfioError(err) });
          resolve(1);
        },
      );
    };
    if (early) handle(early);
  });
}
