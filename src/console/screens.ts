/**
 * Every display device's screen, for the web console and for VNC: one
 * feed per running display device (made when first watched) and, unless
 * turned off, one VNC server each. A device's feed and VNC server go when
 * its unregistration begins.
 */
import { VfioError, toVfioError } from '../base/errors.js';
import type { VfioDevice } from '../core/device.js';
import type { VfioCore } from '../core/vfio-core.js';
import { withFields, type ConsoleLog } from './console-log.js';
import { isDisplaySource } from '../drivers/display/display-source.js';
import { ScreenFeed } from './screen-feed.js';
import { VncServer } from './vnc-server.js';

export interface ScreensOptions {
  core: VfioCore;
  log: ConsoleLog;
  /** Serve each display device over VNC on loopback. Default true. */
  vnc?: boolean;
  /** Milliseconds between looks at a watched screen. Default 100. */
  intervalMs?: number;
}

export class Screens {
  private readonly feeds = new Map<string, ScreenFeed>();
  private readonly vncServers = new Map<string, Promise<VncServer | undefined>>();
  private readonly addresses = new Map<string, string>();
  private readonly core: VfioCore;
  private readonly log: ConsoleLog;
  private readonly onUnregistering = (device: VfioDevice): void => void this.remove(device.name);

  constructor(private readonly options: ScreensOptions) {
    this.core = options.core;
    this.log = options.log;
    this.core.on('unregistering', this.onUnregistering);
  }

  /**
   * The feed of running display device `name`: ENODEV when no such device
   * runs, ENOTTY when it has no display.
   */
  feed(name: string): ScreenFeed {
    const known = this.feeds.get(name);
    if (known) return known;
    const device = this.core.device(name);
    if (!device || device.state !== 'registered') throw new VfioError('ENODEV', `${name} is not running`);
    if (!isDisplaySource(device)) throw new VfioError('ENOTTY', `${name} has no display`);
    const feed = new ScreenFeed(device, { intervalMs: this.options.intervalMs });
    this.feeds.set(name, feed);
    return feed;
  }

  /** True when `name` is a running display device. */
  isDisplay(name: string): boolean {
    return isDisplaySource(this.core.device(name));
  }

  /**
   * Starts the VNC server of a newly registered device, if it is a display
   * (and VNC is on); resolves once it listens. A failure is logged: the
   * device is served all the same.
   */
  async add(device: VfioDevice): Promise<void> {
    if (this.options.vnc === false || !isDisplaySource(device) || this.vncServers.has(device.name)) return;
    const name = device.name;
    const starting = Promise.resolve()
      .then(() => VncServer.listen({ feed: this.feed(name), name: `uvfio ${name}`, log: withFields(this.log, { uuid: name }) }))
      .then(
        (server) => {
          this.addresses.set(name, server.address);
          this.log.info('vnc listening', { uuid: name, vnc: server.address });
          return server;
        },
        (err: unknown) => {
          this.log.error('vnc server failed', { uuid: name, error: toVfioError(err) });
          return undefined;
        },
      );
    this.vncServers.set(name, starting);
    await starting;
    // The device may have begun to go while the listener came up.
    if (this.core.device(name)?.state !== 'registered') await this.remove(name);
  }

  /** `HOST:PORT` of a device's VNC server, while it listens. */
  vncAddress(name: string): string | undefined {
    return this.addresses.get(name);
  }

  /** Closes a device's feed (its viewers are told) and VNC server. */
  async remove(name: string): Promise<void> {
    this.feeds.get(name)?.close();
    this.feeds.delete(name);
    this.addresses.delete(name);
    const vnc = this.vncServers.get(name);
    this.vncServers.delete(name);
    await (await vnc)?.close();
  }

  /** Closes every feed and VNC server and stops following the core. */
  async close(): Promise<void> {
    this.core.off('unregistering', this.onUnregistering);
    const names = new Set([...this.feeds.keys(), ...this.vncServers.keys()]);
    await Promise.all([...names].map((n) => this.remove(n)));
  }
}
