/**
 * The in-memory transport: the peer is code in this process (a test, a
 * replay of a recorded session), in the spirit of libvfio-user's pipe
 * transport. What the peer sends goes through the same framer as a
 * socket's bytes (`push`, cut wherever the peer likes) or arrives already
 * framed (`pushFrame`); what the owner sends goes to `onSend`.
 *
 * File descriptors are real, with SCM_RIGHTS semantics: fds pushed become
 * the receiver's; fds the owner sends are duplicated for the peer, who
 * must close them. Deliveries happen in order from a macrotask (never
 * inside push(), never inside the owner's own call), as a socket's do.
 */
import { VfioError } from '../../base/errors.js';
import { closeFds, dup } from '../../native/index.js';
import { type Frame, MessageFramer } from '../framer.js';
import { openTwinSocket } from './socket-transport.js';
import type { Transport } from './transport.js';

type Inbound = { chunk: Uint8Array; fds: number[] } | { frame: Frame } | { hangUp: true };

export class MemoryTransport implements Transport {
  onMessage: Transport['onMessage'] = (frame) => closeFds(frame.fds);
  onBroken: Transport['onBroken'] = () => {};
  onClose: Transport['onClose'] = () => {};
  onDrain: Transport['onDrain'] = () => {};
  placeBody: Transport['placeBody'] = null;

  /**
   * The peer's side: each message the owner sent (a copy) with duplicates
   * of its fds, which are now the peer's. The default closes them.
   */
  onSend: (message: Uint8Array, fds: number[]) => void = (_m, fds) => closeFds(fds);
  /** The peer's side: the owner ended or destroyed the transport. */
  onHangUp: () => void = () => {};

  readonly #framer: MessageFramer;
  readonly #inbox: Inbound[] = [];
  /** Sent while the peer does not read (see stall()). */
  readonly #outbox: { message: Uint8Array; fds: number[] }[] = [];
  #pending = 0;
  #scheduled = false;
  #reading = true;
  #peerReading = true;
  #brokenTold = false;
  #closed = false;

  constructor(options: { maxMessageSize?: number } = {}) {
    this.#framer = new MessageFramer({
      onMessage: (frame) => this.onMessage(frame),
      place: (header, head) => (this.placeBody === null ? null : this.placeBody(header, head)),
      ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}),
    });
  }

  /**
   * Two transports back to back, each the other's peer: what one sends the
   * other receives (a server session on one end, a client on the other).
   */
  static pair(): [MemoryTransport, MemoryTransport] {
    const a = new MemoryTransport();
    const b = new MemoryTransport();
    a.onSend = (message, fds) => b.push(message, fds);
    b.onSend = (message, fds) => a.push(message, fds);
    a.onHangUp = () => b.hangUp();
    b.onHangUp = () => a.hangUp();
    return [a, b];
  }

  // ---- the peer's side --------------------------------------------------------

  /** Bytes as a socket read would return them, with the fds of that read (now the transport's). */
  push(chunk: Uint8Array, fds: readonly number[] = []): void {
    if (this.#closed) {
      closeFds(fds);
      return;
    }
    this.#inbox.push({ chunk: chunk.slice(), fds: [...fds] });
    this.#schedule();
  }

  /** A whole message, already framed (its body is copied; its fds become the receiver's). */
  pushFrame(frame: Frame): void {
    if (this.#closed) {
      closeFds(frame.fds);
      return;
    }
    this.#inbox.push({ frame: { ...frame, body: frame.body.slice(), fds: [...frame.fds] } });
    this.#schedule();
  }

  /** The peer closes its end: onClose follows the messages pushed before. */
  hangUp(): void {
    if (this.#closed) return;
    this.#inbox.push({ hangUp: true });
    this.#schedule();
  }

  /**
   * The peer stops reading (true) or reads again (false): meanwhile what
   * the owner sends waits here and counts in pendingBytes.
   */
  stall(stalled: boolean): void {
    this.#peerReading = !stalled;
    if (!stalled) this.#schedule();
  }

  // ---- the owner's side (Transport) ----------------------------------------------

  get closed(): boolean {
    return this.#closed;
  }

  get pendingBytes(): number {
    return this.#pending;
  }

  send(message: Uint8Array, fds?: readonly number[]): boolean {
    if (this.#closed) return false;
    if (fds !== undefined && fds.length > 0 && message.length === 0) {
      throw new VfioError('EINVAL', 'fds need at least one byte to travel with');
    }
    const copies: number[] = [];
    try {
      for (const fd of fds ?? []) copies.push(dup(fd));
    } catch (err) {
      closeFds(copies);
      throw err;
    }
    this.#outbox.push({ message: message.slice(), fds: copies });
    this.#pending += message.length;
    this.#schedule();
    return true;
  }

  send2(head: Uint8Array, body: Uint8Array, fds?: readonly number[]): boolean {
    const message = new Uint8Array(head.length + body.length);
    message.set(head, 0);
    message.set(body, head.length);
    return this.send(message, fds);
  }

  pause(): void {
    this.#reading = false;
  }

  resume(): void {
    if (this.#closed || this.#framer.error !== null) return;
    this.#reading = true;
    this.#schedule();
  }

  hold(): void {
    // Pushed chunks are copies of their own; a large body put together from
    // several is in a pooled buffer the framer keeps out of the pool.
    this.#framer.keepBody();
  }

  release(): void {
    this.#framer.releaseBody();
  }

  setMaxMessageSize(bytes: number): void {
    this.#framer.setMaxMessageSize(bytes);
  }

  /** Every message is delivered: there is no native layer to answer any. */
  answerRegions(): void {}
  holdAnswers(): void {}
  flushAnswers(): void {}

  /** Memory cannot go to another process. */
  exportState(): null {
    return null;
  }

  start(): void {}

  /** A real twin socket: the peer receives its end as an fd. */
  openTwin(): { twin: Transport; peerFd: number } {
    return openTwinSocket(this.#framer.maxMessageSize);
  }

  end(): void {
    this.#close(undefined);
  }

  destroy(): void {
    this.#close(undefined);
  }

  // ---- delivery -----------------------------------------------------------------------

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#peerReading && this.#outbox.length > 0) {
      for (const { message, fds } of this.#outbox.splice(0)) {
        this.#pending -= message.length;
        this.onSend(message, fds);
      }
      if (this.#closed) return;
      this.onDrain();
    }
    while (this.#reading && !this.#closed && this.#inbox.length > 0) {
      const item = this.#inbox.shift()!;
      if ('hangUp' in item) {
        this.#close(undefined);
        return;
      }
      if ('frame' in item) {
        this.onMessage(item.frame);
        continue;
      }
      const unowned = this.#framer.push(item.chunk, item.fds);
      if (unowned.length > 0) closeFds(unowned);
      const failure = this.#framer.error;
      if (failure !== null && !this.#brokenTold) {
        this.#brokenTold = true;
        this.#reading = false;
        this.onBroken(failure);
      }
    }
  }

  #close(err: VfioError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFds(this.#framer.close().fds);
    for (const item of this.#inbox.splice(0)) {
      if ('chunk' in item) closeFds(item.fds);
      else if ('frame' in item) closeFds(item.frame.fds);
    }
    // What the owner sent before it ended still reaches the peer.
    for (const { message, fds } of this.#outbox.splice(0)) this.onSend(message, fds);
    this.#pending = 0;
    this.onClose(err);
    this.onHangUp();
  }
}
