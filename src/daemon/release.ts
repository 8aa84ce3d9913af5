/**
 * Waiting for the clients of devices being removed to let go, the way an
 * operator wants it: never silently. While the removal waits (its clients
 * were asked to release the device: the REQ interrupt, which QEMU's
 * vfio-user client may ignore), who holds each device is reported after a
 * second and then every ten seconds, as the kernel does for vfio-pci; at
 * the deadline the clients still there are named and dropped, which lets
 * the removal finish.
 */
import type { DeviceServer } from './device-server.js';
import type { DeviceClient } from './protocol.js';
import { within } from './within.js';

/** How long a removal may wait before who holds the device is first told. */
export const FIRST_REPORT_MS = 1_000;
/** How often it is told again while the wait goes on. */
export const REPORT_EVERY_MS = 10_000;

export interface ReleaseOptions {
  server: Pick<DeviceServer, 'clients' | 'dropClient' | 'watchRequests'>;
  /** The devices being removed, by name. */
  uuids: readonly string[];
  /** Settles when every removal is over. */
  removed: Promise<unknown>;
  /** When to drop the clients still there: 0 at once, Infinity never. */
  deadlineMs: number;
  /** Said to the clients dropped. */
  dropReason: string;
  /** A device is still held by `clients` after `waitedMs`. */
  onWaiting(uuid: string, clients: Array<DeviceClient & { asked: boolean }>, waitedMs: number): void;
  /** `clients` of a device are being dropped after `waitedMs`. */
  onDropping(uuid: string, clients: DeviceClient[], waitedMs: number): void;
}

/**
 * Waits for `removed`, reporting and dropping as the file's comment says.
 * Resolves with the clients dropped, by device; removal may still be under
 * way then (the files of dropped clients close asynchronously): await
 * `removed` after.
 */
export async function awaitRelease(o: ReleaseOptions): Promise<Map<string, DeviceClient[]>> {
  const dropped = new Map<string, DeviceClient[]>();
  const watches = o.uuids.map((uuid) => ({ uuid, watch: o.server.watchRequests(uuid) }));
  let over = false;
  const done = o.removed.then(
    () => (over = true),
    () => (over = true),
  );
  try {
    // Times from the monotonic clock, in whole ms since the start: a timer
    // may fire a little before its time by another clock, and an early wake
    // must neither report nor drop.
    const started = performance.now();
    const elapsed = (): number => Math.floor(performance.now() - started);
    let nextReport = FIRST_REPORT_MS;
    for (;;) {
      const wake = Math.min(o.deadlineMs, nextReport);
      const wait = wake - elapsed();
      if (wait > 0) await within(done, wait);
      if (over) return dropped;
      const waitedMs = elapsed();
      if (waitedMs < wake) continue;
      const holders = watches.map(({ uuid, watch }) => ({ uuid, watch, clients: o.server.clients(uuid) })).filter((h) => h.clients.length > 0);
      if (waitedMs >= o.deadlineMs) {
        const drops: Promise<boolean>[] = [];
        for (const { uuid, clients } of holders) {
          o.onDropping(uuid, clients, waitedMs);
          dropped.set(uuid, clients);
          for (const c of clients) drops.push(o.server.dropClient(c.id, o.dropReason));
        }
        await Promise.all(drops);
        return dropped;
      }
      for (const { uuid, watch, clients } of holders) {
        o.onWaiting(
          uuid,
          clients.map((c) => ({ ...c, asked: watch.asked(c.id) })),
          waitedMs,
        );
      }
      nextReport = waitedMs + REPORT_EVERY_MS;
    }
  } finally {
    for (const { watch } of watches) watch.close();
  }
}
