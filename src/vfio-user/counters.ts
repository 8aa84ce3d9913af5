/**
 * What one session has done, counted as it happens: plain integer fields
 * bumped in place on the message path (no allocation), read as a copy.
 * They only grow; rates are differences between two reads.
 */

/** A session's counters since it opened. */
export interface SessionCounters {
  /** messages received: commands, and replies to the server's DMA messages */
  messagesIn: number;
  /** replies sent, success or error */
  repliesOut: number;
  /** commands that failed (answered with an error, or posted and failed) */
  errors: number;
  /** bytes received on the session's sockets */
  bytesIn: number;
  /** bytes the session handed to its sockets: replies and DMA messages */
  bytesOut: number;
  /** interrupts the device signalled through this client's eventfds */
  interrupts: number;
}

/** Fresh counters, all zero. */
export function newCounters(): SessionCounters {
  return { messagesIn: 0, repliesOut: 0, errors: 0, bytesIn: 0, bytesOut: 0, interrupts: 0 };
}
