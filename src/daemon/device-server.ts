/**
 * What the daemon needs from whatever serves devices on sockets: serve a
 * device once it is registered, say where, say who is connected and drop
 * them, and let go of everything at shutdown. The vfio-user server
 * provides it; the command line's offline mode has none.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { PciIrq } from '../base/uapi.js';
import type { VfioDevice } from '../core/device.js';
import type { VfioCore } from '../core/vfio-core.js';
import type { ClientInfo } from '../vfio-user/client-info.js';
import type { ResourceLimits } from '../vfio-user/limits.js';
import { VfioUserServer, type DeviceServingState } from '../vfio-user/server.js';
import { INTERRUPT_CHANNEL, type InterruptTrace } from '../vfio-user/trace.js';
import type { Logger } from './log.js';
import type { DeviceClient } from './protocol.js';
import { TraceFeed, type TraceSink, type TraceTap } from './trace-feed.js';

/** Which clients of a device were sent a release request (REQ), since the watch began. */
export interface RequestWatch {
  asked(clientId: number): boolean;
  /** Stops watching. */
  close(): void;
}

export interface DeviceServer {
  /** Listens on the device's socket; resolves once a client could connect. */
  serve(device: VfioDevice): Promise<void>;
  /** The socket of a served device, by name (UUID). */
  socketPath(name: string): string | undefined;
  /** The clients connected to a device, by name, oldest first. */
  clients(name: string): DeviceClient[];
  /** The same with what each did (counters) and mapped (DMA), for the console. */
  clientDetails(name: string): ClientInfo[];
  /** Drops one client as if it hung up; true once it is gone, false when there was none. */
  dropClient(id: number, reason: string): Promise<boolean>;
  /** Notes which clients of device `name` are asked to let go from now on. */
  watchRequests(name: string): RequestWatch;
  /** Feeds `sink` what every client of device `name` does (see trace-feed.ts); EUSERS past MAX_TRACES. */
  trace(name: string, sink: TraceSink, start?: number): TraceTap;
  /**
   * Stops listening and drops every client connection, which closes their
   * device files: what forces a device's unregistration to finish.
   */
  close(): Promise<void>;
  /** What a daemon takeover needs of the server (see VfioUserServer); absent: the daemon cannot be taken over. */
  readonly takeover?: TakeoverSeam;
}

/** The vfio-user server's takeover seam: freeze, export, adopt, thaw. */
export interface TakeoverSeam {
  freeze(): Promise<void>;
  thaw(): void;
  exportDevice(device: VfioDevice, fds: number[]): DeviceServingState;
  adoptDevice(device: VfioDevice, state: DeviceServingState, fds: readonly number[]): Promise<void>;
}

/**
 * The vfio-user server, serving each device the bus creates at
 * `${socketDir}/${name}.sock`, under `limits` (the rest at their defaults).
 */
export function createVfioUserServer(core: VfioCore, socketDir: string, log: Logger, limits: Partial<ResourceLimits> = {}): DeviceServer {
  // follow: false: the bus's serve hook asks for each device, so a device
  // is on its socket before `start` answers.
  const server = new VfioUserServer({ core, socketDir, follow: false, log, limits });
  const watches = new Set<{ device: string; asked: Set<number> }>();
  const feed = new TraceFeed(core);
  // Subscribed only while a watch is open: with no subscriber, signalling
  // an interrupt builds no trace object.
  const onInterrupt = (message: unknown): void => {
    const m = message as InterruptTrace;
    if (m.index !== PciIrq.REQ) return;
    for (const w of watches) if (w.device === m.device) w.asked.add(m.client);
  };
  return {
    serve: (device) => server.serve(device),
    socketPath: (name) => server.socketPath(name),
    clients(name) {
      const device = core.device(name);
      if (device === undefined) return [];
      return server.clients(device).map(({ id, pid, uid, gid, command, connectedAt, bound }) => ({ id, pid, uid, gid, command, connectedAt, bound }));
    },
    clientDetails(name) {
      const device = core.device(name);
      return device === undefined ? [] : server.clients(device);
    },
    dropClient: (id, reason) => server.dropClient(id, reason),
    watchRequests(name) {
      const watch = { device: name, asked: new Set<number>() };
      if (watches.size === 0) subscribe(INTERRUPT_CHANNEL, onInterrupt);
      watches.add(watch);
      return {
        asked: (id) => watch.asked.has(id),
        close() {
          if (watches.delete(watch) && watches.size === 0) unsubscribe(INTERRUPT_CHANNEL, onInterrupt);
        },
      };
    },
    trace: (name, sink, start) => feed.tap(name, sink, start),
    close: () => server.close(),
    takeover: server,
  };
}
