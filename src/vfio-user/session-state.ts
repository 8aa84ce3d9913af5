/**
 * A session's whole state, as a daemon takeover moves it from the process
 * that served the client to the next one (VfioUserSession.exportState →
 * VfioUserServer.adopt): the client's socket (and twin socket) with every
 * byte in flight on our side, what VERSION agreed, who the client is and
 * what it did, the commands it sent that were not served yet, its DMA
 * mappings and its interrupt eventfds.
 *
 * Everything is plain data: numbers, strings, booleans, arrays, objects
 * and Uint8Arrays, so it travels as JSON with the bytes beside it. Every
 * fd is an index into the fd list that travels with the state (SCM_RIGHTS
 * makes them the receiver's own).
 *
 * Transport engineers: a new piece of per-session state the server keeps
 * across messages belongs here (exported in session.ts's exportState,
 * restored in its restore), or a takeover loses it.
 */
import type { ClientIdentity } from './client-identity.js';
import type { SessionCounters } from './counters.js';
import type { Negotiated } from './negotiation.js';

/** A transport's socket and bytes in flight (TransportHandover), fds as indexes. */
export interface SocketState {
  fd: number;
  inbound: { bytes: Uint8Array; fds: number[] };
  unsent: Array<{ data: Uint8Array; fds: number[] }>;
}

/** A command received and not served yet, as the session queued it. */
export interface QueuedCommand {
  msgId: number;
  cmd: number;
  flags: number;
  /** the message's msg_size */
  size: number;
  body: Uint8Array;
  fds: number[];
}

/** One DMA mapping. `fd` null: reached by DMA_READ/DMA_WRITE messages. */
export interface DmaMappingState {
  iova: number;
  size: number;
  /** DmaProt bits */
  prot: number;
  fd: number | null;
  /** where iova's byte is in the file (with `fd`) */
  offset: number;
}

/** One interrupt eventfd attached to the device: vector `vector` of IRQ index `index`. */
export interface IrqState {
  index: number;
  vector: number;
  fd: number;
}

export interface SessionState {
  identity: ClientIdentity;
  /** ms since the epoch */
  connectedAt: number;
  counters: SessionCounters;
  /** null while VERSION has not succeeded */
  negotiated: NegotiatedState | null;
  /** ms since the epoch by which VERSION must succeed (unbound sessions) */
  versionDeadline: number | null;
  socket: SocketState;
  twin: SocketState | null;
  /** in the order they arrived */
  queued: QueuedCommand[];
  dma: DmaMappingState[];
  irqs: IrqState[];
}

/** Negotiated with its one bigint (pgsizes) as a decimal string. */
export type NegotiatedState = Omit<Negotiated, 'reply'> & { reply: Omit<Negotiated['reply'], 'pgsizes'> & { pgsizes?: string } };

export function negotiatedToState(n: Negotiated): NegotiatedState {
  const { pgsizes, ...reply } = n.reply;
  return { ...n, reply: { ...reply, ...(pgsizes === undefined ? {} : { pgsizes: pgsizes.toString() }) } };
}

export function negotiatedFromState(s: NegotiatedState): Negotiated {
  const { pgsizes, ...reply } = s.reply;
  return { ...s, reply: { ...reply, ...(pgsizes === undefined ? {} : { pgsizes: BigInt(pgsizes) }) } };
}
