/**
 * What the daemon needs from whatever serves devices on sockets: serve a
 * device once it is registered, say where, and let go of everything at
 * shutdown. The vfio-user server provides it; the command line's offline
 * mode has none.
 */
import type { VfioDevice } from '../core/device.js';
import type { VfioCore } from '../core/vfio-core.js';
import type { ResourceLimits } from '../vfio-user/limits.js';
import { VfioUserServer } from '../vfio-user/server.js';
import type { Logger } from './log.js';

export interface DeviceServer {
  /** Listens on the device's socket; resolves once a client could connect. */
  serve(device: VfioDevice): Promise<void>;
  /** The socket of a served device, by name (UUID). */
  socketPath(name: string): string | undefined;
  /**
   * Stops listening and drops every client connection, which closes their
   * device files: what forces a device's unregistration to finish.
   */
  close(): Promise<void>;
}

/**
 * The vfio-user server, serving each device the bus creates at
 * `${socketDir}/${name}.sock`, under `limits` (the rest at their defaults).
 */
export function createVfioUserServer(core: VfioCore, socketDir: string, log: Logger, limits: Partial<ResourceLimits> = {}): DeviceServer {
  // follow: false: the bus's serve hook asks for each device, so a device
  // is on its socket before `start` answers.
  return new VfioUserServer({ core, socketDir, follow: false, log, limits });
}
