/**
 * One channel of a vfio-user client, over any Transport: the main one
 * (commands out, replies and server commands in) or the twin socket
 * (server commands in, replies out). Replies are matched to requests by
 * msg_id; commands from the server go to `onCommand` while their bytes
 * are valid.
 */
import { VfioError } from '../../base/errors.js';
import { closeFds } from '../../native/index.js';
import { u16 } from '../buffer-reader.js';
import { copyFrame, type Frame } from '../framer.js';
import { isReply } from '../header.js';
import { commandName } from '../protocol.js';
import type { Transport } from '../transport/transport.js';

interface Pending {
  cmd: number;
  resolve(frame: Frame): void;
  reject(err: VfioError): void;
  timer: NodeJS.Timeout | undefined;
}

export interface ChannelOptions {
  /** How long a reply may take (ms); 0 waits forever. */
  timeoutMs: number;
}

export class ClientChannel {
  /**
   * A command from the server (DMA_READ, DMA_WRITE), valid during the
   * call; its fds are the callee's. Default: close the fds, ignore it.
   */
  onCommand: (frame: Frame) => void = (frame) => closeFds(frame.fds);
  /** Called once when the socket closes (after pending requests were failed). */
  onClose: (err?: VfioError) => void = () => {};

  readonly #transport: Transport;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  #nextId = 0;
  #closed = false;

  /** Takes the transport over (its callbacks are now this channel's). */
  constructor(transport: Transport, options: ChannelOptions) {
    this.#transport = transport;
    this.#timeoutMs = options.timeoutMs;
    transport.onMessage = (frame) => this.#onFrame(frame);
    transport.onBroken = (failure) => this.#shutdown(failure.error);
    transport.onClose = (err) => this.#shutdown(err ?? new VfioError('ECONNRESET', 'the server closed the connection'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Raises the framing limit (after VERSION agreed on a larger transfer size). */
  setMaxMessageSize(n: number): void {
    this.#transport.setMaxMessageSize(n);
  }

  /** A msg_id no unanswered request uses. */
  nextId(): number {
    for (let i = 0; i < 0x10000; i++) {
      const id = this.#nextId;
      this.#nextId = (id + 1) & 0xffff;
      if (!this.#pending.has(id)) return id;
    }
    throw new VfioError('EAGAIN', 'every msg_id is waiting for its reply');
  }

  /** Sends a whole message (a posted command, or a reply); fds stay the caller's. */
  send(message: Uint8Array, fds?: readonly number[]): void {
    if (this.#closed || !this.#transport.send(message, fds)) {
      throw new VfioError('ENOTCONN', 'the connection to the server is closed');
    }
  }

  /**
   * Sends a command and resolves with a copy of its reply (error replies
   * too: the caller decodes). The reply's fds are the caller's.
   */
  request(message: Uint8Array, fds?: readonly number[]): Promise<Frame> {
    if (this.#closed) return Promise.reject(new VfioError('ENOTCONN', 'the connection to the server is closed'));
    const id = u16(message, 0);
    const cmd = u16(message, 2);
    return new Promise<Frame>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (this.#timeoutMs > 0) {
        timer = setTimeout(() => {
          if (this.#pending.get(id)?.timer !== timer) return;
          this.#pending.delete(id);
          reject(new VfioError('ETIMEDOUT', `no reply to ${commandName(cmd)} (msg_id ${id}) within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs);
      }
      this.#pending.set(id, { cmd, resolve, reject, timer });
      try {
        this.send(message, fds);
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  /** Closes the socket; pending requests fail with ENOTCONN. Idempotent. */
  close(): void {
    this.#shutdown(new VfioError('ENOTCONN', 'the client closed the connection'));
  }

  #onFrame(frame: Frame): void {
    if (!isReply(frame.flags)) {
      this.onCommand(frame);
      return;
    }
    const p = this.#pending.get(frame.msgId);
    if (p === undefined || p.cmd !== frame.cmd) {
      closeFds(frame.fds); // a reply nobody waits for (timed out, or bogus)
      return;
    }
    this.#pending.delete(frame.msgId);
    clearTimeout(p.timer);
    p.resolve(copyFrame(frame));
  }

  #shutdown(err: VfioError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.destroy();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
    this.onClose(err);
  }
}
