/**
 * What the daemon needs from whatever serves devices on sockets: serve a
 * device once it is registered, say where, and let go of everything at
 * shutdown. The vfio-user server provides it; the command line's offline
 * mode has none.
 */
import type { VfioDevice } from '../core/device.js';
import type { VfioCore } from '../core/vfio-core.js';
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
 * The vfio-user server, serving each device at `${socketDir}/${name}.sock`.
 * Placeholder until src/vfio-user's server lands: devices are registered
 * but put on no socket.
 */
export function createVfioUserServer(core: VfioCore, socketDir: string, log: Logger): DeviceServer {
  void core;
  log.warn('no vfio-user server is built in yet: devices get no socket', { socketDir });
  return {
    serve: async () => {},
    socketPath: () => undefined,
    close: async () => {},
  };
}
