/**
 * A client of a device as the server reports it (VfioUserServer.clients):
 * who it is, since when, whether it handshook, what it did, and what
 * memory it mapped. A snapshot: later activity does not change it.
 */
import { DmaProt } from '../base/uapi.js';
import type { SessionCounters } from './counters.js';
import type { VfioUserSession } from './session.js';

/** One DMA mapping of a client, as it asked for it. */
export interface DmaMappingInfo {
  iova: number;
  size: number;
  /** 'fd': its memory is mapped here; 'message': reached by DMA_READ/DMA_WRITE */
  backing: 'fd' | 'message';
  readable: boolean;
  writable: boolean;
}

/** A snapshot of one connected client. */
export interface ClientInfo {
  /** the session's id, unique in the process (the trace channels use it) */
  id: number;
  /** the device's name */
  device: string;
  /** SO_PEERCRED at connect time; -1 when unknown, pid 0 outside our pid namespace */
  pid: number;
  uid: number;
  gid: number;
  /** /proc/PID/cmdline (spaces between arguments); null until read or when the process was gone */
  command: string | null;
  /** ms since the epoch */
  connectedAt: number;
  /** VFIO_USER_VERSION succeeded */
  bound: boolean;
  counters: SessionCounters;
  /** in IOVA order */
  dma: DmaMappingInfo[];
}

/** The snapshot of `c`. */
export function clientInfo(c: VfioUserSession): ClientInfo {
  const { pid, uid, gid, command } = c.identity;
  return {
    id: c.id,
    device: c.file.device.name,
    pid,
    uid,
    gid,
    command,
    connectedAt: c.connectedAt,
    bound: c.bound,
    counters: { ...c.counters },
    dma: dmaMappings(c),
  };
}

/** The address space's mappings, one per DMA_MAP the client made. */
function dmaMappings(c: VfioUserSession): DmaMappingInfo[] {
  const out: DmaMappingInfo[] = [];
  const mappings = c.iommufd?.alive ? c.iommufd.ioas.list() : [];
  for (const m of mappings) {
    out.push({
      iova: m.iova,
      size: m.length,
      backing: m.backing.reach === 'messages' ? 'message' : 'fd',
      readable: (m.prot & DmaProt.READ) !== 0,
      writable: (m.prot & DmaProt.WRITE) !== 0,
    });
  }
  return out;
}
