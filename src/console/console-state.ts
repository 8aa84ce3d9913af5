/**
 * What the console page shows, built from the same service requests the
 * command line makes (`types`, `list`, `list --defined`): the parents'
 * types with their available instances, and every device, running or
 * only defined, with its screen and VNC address when it has a display,
 * and the clients of each running device as the vfio-user server reports
 * them (with rates, see client-rates.ts).
 */
import type { ClientInfo } from '../vfio-user/client-info.js';
import type { ClientRateMeter, ConsoleClient } from './client-rates.js';

/**
 * The service the console asks, with the command line's requests and
 * answers (src/daemon/protocol.ts): the daemon's MdevService.
 */
export interface ConsoleService {
  handle(op: string, args: unknown): Promise<unknown>;
}

/** A type as `types` answers it; the console passes it on as it is. */
export type ConsoleType = Record<string, unknown>;

/** A device as `list` answers it (the console reads two fields and passes on the rest). */
export interface ListedDevice {
  uuid: string;
  active: boolean;
  [field: string]: unknown;
}

/** A device as the page shows it. */
export interface ConsoleDevice extends ListedDevice {
  /** True for a running display device (it has a screen to watch). */
  display: boolean;
  /** A running device's clients, when the daemon tells them. */
  clients?: ConsoleClient[];
}

/** Where the state's parts come from. */
export interface StateSources {
  service: ConsoleService;
  /** True for a running display device, by UUID. */
  isDisplay: (uuid: string) => boolean;
  /** Every client of a running device, by UUID (the vfio-user server's snapshot). */
  clients?: (uuid: string) => ClientInfo[];
  meter: ClientRateMeter;
  version: string;
}

interface Listing {
  devices: ListedDevice[];
  problems: string[];
}

export interface ConsoleState {
  t: 'state';
  /** Milliseconds since the epoch, when this was taken. */
  at: number;
  daemon: { pid: number; version: string };
  types: ConsoleType[];
  /** Running devices first (by UUID), then definitions that do not run. */
  devices: ConsoleDevice[];
  /** One sentence per damaged definition left out. */
  problems: string[];
}

/** Takes the state now. */
export async function takeState(sources: StateSources): Promise<ConsoleState> {
  const { service, isDisplay, clients, meter, version } = sources;
  const { types } = (await service.handle('types', {})) as { types: ConsoleType[] };
  const running = (await service.handle('list', {})) as Listing;
  const defined = (await service.handle('list', { defined: true })) as Listing;
  const byDevice = clients ? meter.read(new Map(running.devices.map((d) => [d.uuid, clients(d.uuid)]))) : undefined;
  const devices: ConsoleDevice[] = [
    ...running.devices.map((d) => ({
      ...d,
      display: isDisplay(d.uuid),
      ...(byDevice ? { clients: byDevice.get(d.uuid) ?? [] } : {}),
    })),
    ...defined.devices.filter((d) => !d.active).map((d) => ({ ...d, display: false })),
  ];
  return {
    t: 'state',
    at: Date.now(),
    daemon: { pid: process.pid, version },
    types,
    devices,
    problems: [...new Set([...running.problems, ...defined.problems])],
  };
}
