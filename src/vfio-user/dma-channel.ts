/**
 * The server's side of server-to-client commands: VFIO_USER_DMA_READ and
 * VFIO_USER_DMA_WRITE for client memory that was mapped without an fd. It
 * cuts an access into messages of at most the negotiated transfer size,
 * sends them on the main socket or the twin socket, matches the replies by
 * msg_id and settles the access once every piece is answered, failed, or
 * timed out.
 */
import { VfioError } from '../base/errors.js';
import type { DmaLayout } from './context.js';
import type { DmaMessenger } from './client-memory.js';
import { isReply } from './header.js';
import type { Frame } from './framer.js';
import { Command, commandName } from './protocol.js';
import { decodeDmaReadReply, decodeDmaWriteReply, replyError } from './reply-decoder.js';
import { encodeDmaRead, encodeDmaWrite } from './serializer.js';

export interface DmaChannelOptions {
  /** Sends one whole message to the client; false when the socket is gone. */
  send(message: Uint8Array): boolean;
  /** Where the data sits in DMA messages: what this client speaks. */
  layout: DmaLayout;
  /** Bytes per message: the smaller of the two peers' max_data_xfer_size. */
  maxXfer: number;
  /** How long the client may take to answer one message. */
  timeoutMs: number;
}

interface Pending {
  cmd: number;
  address: number;
  count: number;
  /** where a DMA_READ's data goes */
  dest: Uint8Array | null;
  resolve(): void;
  reject(err: VfioError): void;
  timer: NodeJS.Timeout;
}

export class DmaChannel implements DmaMessenger {
  readonly #opts: DmaChannelOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed: VfioError | null = null;

  constructor(options: DmaChannelOptions) {
    this.#opts = options;
  }

  /** Messages sent and not yet answered. */
  get waiting(): number {
    return this.#pending.size;
  }

  /** Reads dest.byteLength bytes of client memory at `address`. */
  read(address: number, dest: Uint8Array): Promise<void> {
    return this.#split(address, dest.byteLength, (at, off, n) => this.#request(Command.DMA_READ, at, n, dest.subarray(off, off + n)));
  }

  /** Writes src to client memory at `address`. */
  write(address: number, src: Uint8Array): Promise<void> {
    return this.#split(address, src.byteLength, (at, off, n) => this.#request(Command.DMA_WRITE, at, n, null, src.subarray(off, off + n)));
  }

  /**
   * A reply arrived: settles the message it answers and returns true, or
   * returns false when it answers nothing of ours (the caller decides what
   * a stray reply deserves). The frame's fds stay the caller's.
   */
  handleReply(frame: Frame): boolean {
    if (!isReply(frame.flags)) return false;
    const p = this.#pending.get(frame.msgId);
    if (p === undefined || p.cmd !== frame.cmd) return false;
    this.#pending.delete(frame.msgId);
    clearTimeout(p.timer);
    const err = replyError(frame);
    if (err !== null) {
      p.reject(err);
      return true;
    }
    try {
      if (p.cmd === Command.DMA_READ) {
        const r = decodeDmaReadReply(frame.body, [], { dmaLayout: this.#opts.layout, maxDataXferSize: p.count });
        if (r.count !== p.count || r.address !== BigInt(p.address)) {
          throw new VfioError('EINVAL', `answers ${r.count} bytes at 0x${r.address.toString(16)}, not ${p.count} at 0x${p.address.toString(16)}`);
        }
        p.dest!.set(r.data);
      } else {
        const r = decodeDmaWriteReply(frame.body, []);
        if (r !== null && r.count !== p.count) throw new VfioError('EINVAL', `reports ${r.count} bytes written, not ${p.count}`);
      }
    } catch (cause) {
      p.reject(new VfioError('EIO', `the client's ${commandName(p.cmd)} reply is malformed: ${(cause as Error).message}`, { cause }));
      return true;
    }
    p.resolve();
    return true;
  }

  /** Fails every unanswered message, and every later one, with `err`. Idempotent. */
  abort(err: VfioError): void {
    if (this.#closed !== null) return;
    this.#closed = err;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }

  #split(address: number, length: number, one: (at: number, off: number, n: number) => Promise<void>): Promise<void> {
    if (length === 0) return Promise.resolve();
    const max = this.#opts.maxXfer;
    if (length <= max) return one(address, 0, length);
    const parts: Promise<void>[] = [];
    for (let off = 0; off < length; off += max) parts.push(one(address + off, off, Math.min(max, length - off)));
    return Promise.all(parts).then(() => undefined);
  }

  #request(cmd: number, address: number, count: number, dest: Uint8Array | null, src?: Uint8Array): Promise<void> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    const id = this.#freeId();
    if (id < 0) return Promise.reject(new VfioError('EAGAIN', 'DMA: 65536 messages are already waiting for the client'));
    const layout = this.#opts.layout;
    const message = cmd === Command.DMA_READ ? encodeDmaRead(id, BigInt(address), count, layout) : encodeDmaWrite(id, BigInt(address), src!, layout);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.get(id)?.timer !== timer) return;
        this.#pending.delete(id);
        reject(
          new VfioError('ETIMEDOUT', `the client did not answer ${commandName(cmd)} at 0x${address.toString(16)} within ${this.#opts.timeoutMs} ms`),
        );
      }, this.#opts.timeoutMs);
      timer.unref();
      this.#pending.set(id, { cmd, address, count, dest, resolve, reject, timer });
      if (!this.#opts.send(message)) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new VfioError('ENOTCONN', `${commandName(cmd)}: the client is gone`));
      }
    });
  }

  // msg_ids are 16 bits; skip ones still waiting for their reply.
  #freeId(): number {
    for (let i = 0; i < 0x10000; i++) {
      const id = this.#nextId;
      this.#nextId = (this.#nextId + 1) & 0xffff;
      if (!this.#pending.has(id)) return id;
    }
    return -1;
  }
}
