/**
 * The clients of a device as the console shows them: who (pid, command),
 * since when, how busy (messages, interrupts, bytes and errors per second,
 * from two reads of the server's counters), and what memory they mapped.
 * Rates are taken only when the state is (while a page is open); a client
 * seen for the first time has none yet.
 */
import type { ClientInfo, DmaMappingInfo } from '../vfio-user/client-info.js';
import type { SessionCounters } from '../vfio-user/counters.js';

/** Mappings listed per client; the totals count them all (a client may map 65535). */
export const DMA_LISTED = 32;

/** Per second, over the time since the previous read. */
export interface ClientRates {
  messages: number;
  interrupts: number;
  bytesIn: number;
  bytesOut: number;
  errors: number;
}

export interface ConsoleClient {
  id: number;
  pid: number;
  uid: number;
  command: string | null;
  connectedAt: number;
  bound: boolean;
  counters: SessionCounters;
  /** null at the first read of this client */
  rates: ClientRates | null;
  dma: {
    count: number;
    bytes: number;
    /** The first DMA_LISTED mappings in IOVA order. */
    mappings: DmaMappingInfo[];
  };
}

interface Sample {
  at: number;
  counters: SessionCounters;
}

/** Turns successive snapshots of clients into rates. */
export class ClientRateMeter {
  private last = new Map<number, Sample>();

  /**
   * The clients of every device read now (`byDevice`: device → its
   * clients), with rates against the previous read. Clients gone since are
   * forgotten.
   */
  read(byDevice: Map<string, ClientInfo[]>, now = Date.now()): Map<string, ConsoleClient[]> {
    const next = new Map<number, Sample>();
    const out = new Map<string, ConsoleClient[]>();
    for (const [device, clients] of byDevice) {
      out.set(
        device,
        clients.map((c) => {
          const before = this.last.get(c.id);
          next.set(c.id, { at: now, counters: c.counters });
          return {
            id: c.id,
            pid: c.pid,
            uid: c.uid,
            command: c.command,
            connectedAt: c.connectedAt,
            bound: c.bound,
            counters: c.counters,
            rates: before && now > before.at ? rates(before, c.counters, now) : null,
            dma: {
              count: c.dma.length,
              bytes: c.dma.reduce((n, m) => n + m.size, 0),
              mappings: c.dma.slice(0, DMA_LISTED),
            },
          };
        }),
      );
    }
    this.last = next;
    return out;
  }
}

function rates(before: Sample, now: SessionCounters, at: number): ClientRates {
  const s = (at - before.at) / 1000;
  const per = (a: number, b: number) => Math.round(((a - b) / s) * 10) / 10;
  const c = before.counters;
  return {
    messages: per(now.messagesIn, c.messagesIn),
    interrupts: per(now.interrupts, c.interrupts),
    bytesIn: per(now.bytesIn, c.bytesIn),
    bytesOut: per(now.bytesOut, c.bytesOut),
    errors: per(now.errors, c.errors),
  };
}
