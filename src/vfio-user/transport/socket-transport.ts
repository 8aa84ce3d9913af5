/**
 * The socket transport: a UNIX stream socket that carries fds (UnixSocket)
 * and the framer that cuts its bytes into messages, giving each received
 * fd one owner. One per client connection, and one per twin socket.
 */
import { closeFds, socketPair } from '../../native/index.js';
import { MessageFramer, PLACE_HEAD } from '../framer.js';
import { HEADER_SIZE } from '../header.js';
import type { RegionAnswers } from './region-answers.js';
import type { Transport, TransportHandover } from './transport.js';
import { MAX_RECEIVE_SIZE, UnixSocket } from './unix-socket.js';

/** How a socket transport frames and reads. */
export interface SocketTransportOptions {
  /** Largest msg_size accepted (FramerOptions.maxMessageSize). */
  maxMessageSize?: number;
  /** See UnixSocket.setLinger; 0, the default: never. */
  linger?: number;
}

export class SocketTransport implements Transport {
  onMessage: Transport['onMessage'] = (frame) => closeFds(frame.fds);
  onBroken: Transport['onBroken'] = () => {};
  onClose: Transport['onClose'] = () => {};
  onDrain: Transport['onDrain'] = () => {};
  placeBody: Transport['placeBody'] = null;

  readonly #socket: UnixSocket;
  readonly #framer: MessageFramer;
  #brokenTold = false;
  /** The socket reads only a message's header and head first (fitReads). */
  #headFirst = false;

  /** Takes the socket over (its callbacks are now this transport's). */
  constructor(socket: UnixSocket, options: SocketTransportOptions = {}) {
    this.#socket = socket;
    socket.setLinger(options.linger ?? 0);
    this.#framer = new MessageFramer({
      onMessage: (frame) => this.onMessage(frame),
      place: (header, head) => (this.placeBody === null ? null : this.placeBody(header, head)),
      ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}),
    });
    socket.onData = (chunk, fds) => this.#afterReceive(this.#framer.push(chunk, fds));
    // The rest of a large message is read straight into the buffer it is put together in.
    socket.nextRead = () => this.#framer.bodyRoom();
    socket.onFilled = (n, fds) => this.#afterReceive(this.#framer.filled(n, fds));
    socket.onClose = (err) => {
      // A message cut short by the close may still hold fds.
      closeFds(this.#framer.close().fds);
      this.onClose(err);
    };
    socket.onDrain = () => this.onDrain();
  }

  /**
   * A transport another process handed over (TransportHandover, its fds
   * now ours): the unfinished message goes back into the framer, the
   * unsent bytes go out first. Idle until start(). Takes ownership of
   * every fd in `state`, even when it throws.
   */
  static adopt(state: TransportHandover, options: SocketTransportOptions = {}): SocketTransport {
    let transport: SocketTransport;
    try {
      transport = new SocketTransport(UnixSocket.adopt(state.fd, state.unsent), options);
    } catch (err) {
      closeFds(state.inbound.fds);
      throw err;
    }
    transport.#received(transport.#framer.push(state.inbound.bytes, state.inbound.fds));
    return transport;
  }

  /** Bytes went to the framer; `unowned` are the fds it gave back. */
  #afterReceive(unowned: number[]): void {
    this.#received(unowned);
    // Only a large message, or reads sized for one, has anything to decide.
    if (this.#headFirst || this.#framer.lastSize > MAX_RECEIVE_SIZE) this.#fitReads();
  }

  /**
   * After a message larger than one read, the next read takes just a
   * header and its head: if the next message is that large too, all of its
   * body is then received where it goes (into device memory for a
   * REGION_WRITE), where a full read would have brought 64 KiB of it into
   * the shared buffer to be copied there. A smaller message puts the reads
   * back to full size (one more `recvmsg`, finding nothing, for the first
   * small message after a large one). For a message that fits one read,
   * the extra `recvmsg` costs more than the copy it saves (32 KiB writes:
   * 1.331x -> 1.390x raw_server's time, worse in 8 of 8 rounds).
   */
  #fitReads(): void {
    // Decided between messages only: a large body under way is read into place anyway.
    if (this.#framer.midMessage || this.#socket.closed) return;
    const headFirst = this.#framer.lastSize > MAX_RECEIVE_SIZE;
    if (headFirst === this.#headFirst) return;
    this.#headFirst = headFirst;
    this.#socket.setReceiveBufferSize(headFirst ? HEADER_SIZE + PLACE_HEAD : MAX_RECEIVE_SIZE);
  }

  /** The socket's fd (for SO_PEERCRED; owned by this transport). */
  get fd(): number {
    return this.#socket.fd;
  }

  get closed(): boolean {
    return this.#socket.closed;
  }

  get pendingBytes(): number {
    return this.#socket.pendingBytes;
  }

  send(message: Uint8Array, fds?: readonly number[]): boolean {
    return this.#socket.write(message, fds);
  }

  send2(head: Uint8Array, body: Uint8Array, fds?: readonly number[]): boolean {
    return this.#socket.write2(head, body, fds);
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    // After a broken stream nothing more is read: the bytes are garbage.
    if (this.#framer.error === null) this.#socket.resume();
  }

  hold(): void {
    this.#socket.holdReceiveBuffer();
    this.#framer.keepBody();
  }

  release(): void {
    this.#socket.releaseReceiveBuffer();
    this.#framer.releaseBody();
  }

  setMaxMessageSize(bytes: number): void {
    this.#framer.setMaxMessageSize(bytes);
  }

  answerRegions(answers: RegionAnswers | null): void {
    const framer = this.#framer;
    // Answers are made only from the start of a read: never while the
    // framer holds part of a message, whose rest the read would bring.
    this.#socket.answerRegions(answers === null ? null : { ...answers, may: () => !framer.midMessage && framer.error === null && answers.may() });
  }

  holdAnswers(): void {
    this.#socket.holdAnswers();
  }

  flushAnswers(): void {
    this.#socket.flushAnswers();
  }

  openTwin(): { twin: Transport; peerFd: number } {
    return openTwinSocket(this.#framer.maxMessageSize);
  }

  exportState(): TransportHandover {
    const { fd, unsent } = this.#socket.exportState();
    const { bytes, fds } = this.#framer.unfinished();
    return { fd, inbound: { bytes, fds: [...fds] }, unsent };
  }

  start(): void {
    this.#socket.start();
  }

  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  // After the framer took bytes in: what nobody owns is closed, a broken stream told.
  #received(unowned: number[]): void {
    if (unowned.length > 0) closeFds(unowned);
    if (this.#socket.closed) {
      // Closed by a message's handler mid-chunk: the rest is nobody's.
      closeFds(this.#framer.close().fds);
      return;
    }
    const failure = this.#framer.error;
    if (failure !== null && !this.#brokenTold) {
      this.#brokenTold = true;
      this.#socket.pause();
      this.onBroken(failure);
    }
  }
}

/**
 * A twin socket: a socketpair whose one end is a SocketTransport kept
 * here, the other an fd for the peer (the caller sends it, then closes it).
 */
export function openTwinSocket(maxMessageSize: number): { twin: Transport; peerFd: number } {
  const [ours, theirs] = socketPair();
  let socket: UnixSocket;
  try {
    socket = new UnixSocket(ours);
  } catch (err) {
    closeFds([theirs]);
    throw err;
  }
  return { twin: new SocketTransport(socket, { maxMessageSize }), peerFd: theirs };
}
