/**
 * The seam between a vfio-user session and whatever carries its messages,
 * in the spirit of libvfio-user's tran.h: the session (session.ts, or the
 * client's channel) knows messages, ordering and replies; a transport knows
 * bytes, framing and fds. Two transports exist: SocketTransport (a UNIX
 * stream socket, what clients really use) and MemoryTransport (messages
 * handed in by code: tests, replays).
 *
 * The owner sets the callbacks right after making a transport, before
 * anything can arrive (a transport delivers from I/O callbacks, never from
 * its constructor).
 */
import type { VfioError } from '../../base/errors.js';
import type { Frame, FramingError } from '../framer.js';
import type { MessageHeader } from '../header.js';
import type { RegionAnswers } from './region-answers.js';

/**
 * What a daemon takeover moves of a transport to the next process (see
 * SocketTransport.exportState and adopt): its socket and every byte in
 * flight on our side of it. The fds are the exporter's, borrowed: they
 * stay open, and the transport goes on as it was if the takeover is
 * called off.
 */
export interface TransportHandover {
  /** the connected socket */
  fd: number;
  /** bytes received that are not a whole message yet (the framer's), with the fds that came with them */
  inbound: { bytes: Uint8Array; fds: number[] };
  /** bytes sent that the kernel has not taken yet, in order, each write with the fds of its first byte */
  unsent: Array<{ data: Uint8Array; fds: number[] }>;
}

export interface Transport {
  /**
   * A whole message, in stream order. `frame` and its body are valid only
   * during the call, unless `hold()` is called in it; its fds are the
   * receiver's from the call on (keep or close every one).
   */
  onMessage: (frame: Frame) => void;
  /**
   * The stream broke (a msg_size below the header or over the limit): no
   * message follows. Called after every message before it was delivered.
   */
  onBroken: (failure: FramingError) => void;
  /** Once, whatever closed the transport; `err` unless it closed cleanly. */
  onClose: (err?: VfioError) => void;
  /** Everything sent has left (pendingBytes went back to 0). */
  onDrain: () => void;
  /**
   * Where the rest of a large message may be received instead of a buffer
   * of the transport's (the data of a write, straight into device memory):
   * see FramerOptions.place. Null: never.
   */
  placeBody: ((header: MessageHeader, head: Uint8Array) => Uint8Array | null) | null;

  /** True once closed, whoever closed it. */
  readonly closed: boolean;
  /** Bytes sent but not yet taken by the peer (or its kernel buffer). */
  readonly pendingBytes: number;

  /**
   * Sends one message, `fds` with its first byte; they stay the caller's
   * (the transport duplicates what it must keep). False, sending nothing,
   * once closed or ending: a reply to a vanished peer is no error.
   */
  send(message: Uint8Array, fds?: readonly number[]): boolean;
  /** send() of `head` then `body` as one message, without joining them first. */
  send2(head: Uint8Array, body: Uint8Array, fds?: readonly number[]): boolean;

  /**
   * Stops reading (the peer's sends back up) until resume(). Messages of
   * bytes already read may still be delivered.
   */
  pause(): void;
  resume(): void;
  /**
   * Keeps the message being delivered valid after its callback returns,
   * until release(): for a receiver still working on it asynchronously.
   */
  hold(): void;
  release(): void;

  /** The largest msg_size accepted from now on (header included). */
  setMaxMessageSize(bytes: number): void;

  /**
   * Region accesses of plain memory the transport may answer itself
   * instead of delivering them (see RegionAnswers); null: none. A
   * transport that cannot (memory) ignores it.
   */
  answerRegions(answers: RegionAnswers | null): void;
  /**
   * Answers nothing by itself until its next event finds RegionAnswers.may()
   * true again: the owner's state changed so that an access would not be
   * served at once (busy, queued, frozen, ending).
   */
  holdAnswers(): void;
  /** Tells what it answered so far (RegionAnswers.answered) now. */
  flushAnswers(): void;

  /**
   * A second channel to the same peer for the server's own commands (the
   * twin socket): the transport that stays here, and the fd to send the
   * peer (the caller sends it, then closes it). Null when this transport
   * cannot make one.
   */
  openTwin(): { twin: Transport; peerFd: number } | null;

  /**
   * For a takeover, while paused: the socket and the bytes in flight (see
   * TransportHandover); null when this transport cannot be handed to
   * another process (memory).
   */
  exportState(): TransportHandover | null;
  /**
   * Begins the I/O of a transport adopted from another process (idle
   * until then: the other process might still take it back); a no-op for
   * any other transport.
   */
  start(): void;

  /** Stops delivering, sends what is queued, then closes. */
  end(): void;
  /** Closes now; queued bytes are dropped, fds of unfinished messages closed. Idempotent. */
  destroy(): void;
}
