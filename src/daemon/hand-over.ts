/**
 * The serving daemon's half of a takeover (the protocol: takeover-protocol.ts).
 * It listens on RUNTIME_DIR/takeover.sock (mode 0600; a peer of another
 * uid is refused), one takeover at a time: a second one asking meanwhile
 * is refused with EBUSY.
 *
 * Until the commit point it keeps everything: on any failure, timeout or
 * closed channel it takes its devices back to RUNNING, thaws its server
 * and serves on as before. At the commit it lets go of what listens
 * (release()), says `released` and is done: the caller exits without
 * closing anything else, since every socket, fd and memory it had is the
 * new daemon's now.
 */
import { VfioError, toVfioError } from '../base/errors.js';
import type { VfioDevice } from '../core/device.js';
import type { MdevBus } from '../mdev/index.js';
import { closeFds, peerCredentials } from '../native/index.js';
import { VfioPciDevice } from '../pci/pci-device.js';
import { UnixServer, type UnixSocket } from '../vfio-user/index.js';
import type { TakeoverSeam } from './device-server.js';
import { HandoverFile } from './handover-file.js';
import type { Logger } from './log.js';
import { TakeoverChannel } from './takeover-channel.js';
import {
  TAKEOVER_PROTOCOL_VERSION,
  type Abort,
  type BarState,
  type DeviceState,
  type Hello,
  type Inventory,
  type TakeoverMessage,
} from './takeover-protocol.js';
import { within } from './within.js';

/** How long the new daemon may take to say hello once connected. */
const HELLO_TIMEOUT_MS = 5_000;
/** PCI BARs a device may have handed over. */
const BARS = 6;

export interface HandOverOptions {
  /** RUNTIME_DIR/takeover.sock */
  path: string;
  bus: MdevBus;
  server: TakeoverSeam;
  /** The control socket's listening fd (stays ours: a duplicate goes). */
  controlFd: () => number;
  log: Logger;
  /** How long the whole takeover may take, from hello to commit. */
  timeoutMs: number;
  /** A takeover is under way (true) or was called off (false): control requests wait meanwhile. */
  setBusy(on: boolean): void;
  /** The commit: stop listening on everything (without unlinking), tell systemd `pid` is the service now. */
  release(pid: number): void;
  /** `released` was sent: this process is done. */
  done(pid: number): void;
}

export class HandOver {
  #busy = false;
  #idle: Array<() => void> = [];

  private constructor(
    private readonly listener: UnixServer,
    private readonly o: HandOverOptions,
  ) {
    listener.onConnection = (socket) => void this.#accept(socket);
    listener.onError = (err) => o.log.warn('takeover socket: accept failed', { error: err.message });
  }

  /** Listens on `options.path`. */
  static listen(options: HandOverOptions): HandOver {
    return new HandOver(UnixServer.listen(options.path), options);
  }

  /** Listens on a socket the previous daemon handed over. */
  static adopt(fd: number, options: HandOverOptions): HandOver {
    const self = new HandOver(UnixServer.adopt(fd, options.path), options);
    self.listener.resume();
    return self;
  }

  get fd(): number {
    return this.listener.fd;
  }

  /** Resolves once no takeover is under way (one that commits never lets it resolve: the process exits). */
  idle(): Promise<void> {
    return this.#busy ? new Promise((resolve) => this.#idle.push(resolve)) : Promise.resolve();
  }

  /** Stops listening; the socket file goes unless `keepFile` (a successor listens on it). */
  close(options: { keepFile?: boolean } = {}): void {
    this.listener.close(options);
  }

  async #accept(socket: UnixSocket): Promise<void> {
    let channel: TakeoverChannel;
    try {
      channel = new TakeoverChannel(socket);
    } catch {
      return;
    }
    try {
      const [, uid] = peerCredentials(channel.fd);
      const own = process.getuid?.() ?? uid;
      if (uid !== own && uid !== 0) throw new VfioError('EPERM', `a takeover by uid ${uid} is refused: only uid ${own} may replace this daemon`);
      const { message: hello, fds } = await channel.receive<TakeoverMessage>(HELLO_TIMEOUT_MS);
      closeFds(fds);
      if (hello.op !== 'hello') throw new VfioError('EPROTO', `a takeover begins with hello, not ${hello.op}`);
      if (hello.version !== TAKEOVER_PROTOCOL_VERSION) {
        throw new VfioError(
          'EPROTO',
          `takeover protocol version ${hello.version} is not ${TAKEOVER_PROTOCOL_VERSION}: this daemon is of another uvfio version`,
        );
      }
      if (this.#busy) throw new VfioError('EBUSY', 'another takeover of this daemon is under way');
      await this.#run(channel, hello);
    } catch (err) {
      const e = toVfioError(err);
      await channel.send({ op: 'refused', code: e.code, message: e.message } satisfies Abort).catch(() => {});
      channel.close();
    }
  }

  /** One takeover, from the inventory to `released`, or called off. Throws only before anything changed. */
  async #run(channel: TakeoverChannel, hello: Hello): Promise<void> {
    const { bus, server, log } = this.o;
    if (bus.heldUuids().length !== bus.devices().length) {
      throw new VfioError('EBUSY', 'a device is being created or removed; try the takeover again in a moment');
    }
    this.#busy = true;
    this.o.setBusy(true);
    const started = Date.now();
    const deadline = started + this.o.timeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    log.info('takeover: handing over', { to: hello.pid });
    const files: HandoverFile[] = [];
    let frozen = false;
    let committed = false;
    try {
      const mdevs = bus.devices();
      const fds: number[] = [this.o.controlFd(), this.listener.fd];
      const inventory: Inventory = {
        op: 'inventory',
        pid: process.pid,
        control: 0,
        takeover: 1,
        devices: mdevs.map((m) => ({
          uuid: m.uuid,
          parent: m.parent.name,
          type: m.type.id,
          attrs: { ...m.attrs },
          bars: barsOf(m.device, fds),
        })),
      };
      await channel.send(inventory, fds);
      // Our own files are bound before the freeze: the pause is only the stop, save and export.
      for (const m of mdevs) files.push(await HandoverFile.open(m.device));
      await channel.expect('freeze', left());
      const t0 = performance.now();
      frozen = true;
      const quiet = await within(
        server.freeze().then(() => true),
        left(),
      );
      if (quiet === undefined) throw new VfioError('ETIMEDOUT', 'the clients did not go idle in time for the takeover');
      const t1 = performance.now();
      const devices: DeviceState[] = [];
      const stateFds: number[] = [];
      // Devices are independent: their streams are made side by side.
      const streams = await Promise.all(files.map((f) => f.save()));
      for (const [i, m] of mdevs.entries()) {
        const stream = streams[i]!;
        const first = stateFds.length;
        const own: number[] = [];
        const serving = server.exportDevice(m.device, own);
        stateFds.push(...own);
        devices.push({ uuid: m.uuid, stream, serving, fds: [first, own.length] });
      }
      const t2 = performance.now();
      await channel.send({ op: 'state', devices }, stateFds);
      const t3 = performance.now();
      await channel.expect('commit', left());
      const t4 = performance.now();
      // THE COMMIT POINT: from here on nothing of this process serves again.
      committed = true;
      this.o.release(hello.pid);
      this.listener.close({ keepFile: true });
      await channel.send({ op: 'released' }).catch((err: unknown) => {
        log.error('takeover: the new daemon went away after the commit', { error: toVfioError(err) });
      });
      const ms = (t: number) => Math.round(t * 10) / 10;
      log.info('takeover: handed over', {
        to: hello.pid,
        ms: Date.now() - started,
        devices: mdevs.length,
        phases: { freezeMs: ms(t1 - t0), saveMs: ms(t2 - t1), sendMs: ms(t3 - t2), commitWaitMs: ms(t4 - t3), releaseMs: ms(performance.now() - t4) },
      });
      this.o.done(hello.pid);
    } catch (err) {
      if (committed) throw err;
      const e = toVfioError(err);
      log.warn('takeover called off: serving on', { from: hello.pid, error: e });
      await channel.send({ op: 'abort', code: e.code, message: e.message } satisfies Abort).catch(() => {});
      channel.close();
      for (const f of files) {
        await f
          .resume()
          .catch((why: unknown) => log.error('takeover called off: a device did not resume', { uuid: f.device.name, error: toVfioError(why) }));
        await f.close().catch(() => {});
      }
      if (frozen) server.thaw();
      this.#busy = false;
      this.o.setBusy(false);
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }
}

/** The memory BARs of `device` (clients map them; the new device adopts them), fds appended to `fds`. */
function barsOf(device: VfioDevice, fds: number[]): BarState[] {
  if (!(device instanceof VfioPciDevice)) return [];
  const bars: BarState[] = [];
  for (let index = 0; index < BARS; index++) {
    const memory = device.barMemory(index);
    if (memory) bars.push({ index, fd: fds.push(memory.fd) - 1, size: memory.bytes.length });
  }
  return bars;
}
