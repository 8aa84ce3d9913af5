/**
 * The private channel of a daemon takeover: a UNIX stream socket between
 * the daemon handing over and the one taking over, carrying messages (any
 * structured-clonable value, v8-serialized) with fds beside them
 * (SCM_RIGHTS). The two sides take turns: each message is answered before
 * the next is sent, so every fd that arrives while a message is read is
 * that message's.
 *
 * Frame: u32 payload length, u32 fd count; then one byte per batch of up
 * to FDS_PER_BYTE fds, carrying them; then the payload.
 */
import { deserialize, serialize } from 'node:v8';
import { isErrnoName, VfioError } from '../base/errors.js';
import { closeFds } from '../native/index.js';
import { UnixSocket } from '../vfio-user/index.js';
import type { TakeoverMessage } from './takeover-protocol.js';

/** Fds sent with one byte (SCM_MAX_FD is 253). */
const FDS_PER_BYTE = 250;
const HEADER = 8;
/** A takeover message larger than this is refused (streams of 100s of devices fit many times over). */
const MAX_PAYLOAD = 1 << 30;

export interface Received<T> {
  message: T;
  /** this process's own fds now: the receiver closes them */
  fds: number[];
}

export class TakeoverChannel {
  readonly #socket: UnixSocket;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #fds: number[] = [];
  #closed: VfioError | null = null;
  #waiter: (() => void) | null = null;
  #drained: Array<() => void> = [];

  constructor(socket: UnixSocket) {
    this.#socket = socket;
    socket.onData = (chunk, fds) => {
      this.#chunks.push(Buffer.from(chunk));
      this.#buffered += chunk.length;
      if (fds.length > 0) this.#fds.push(...fds);
      this.#wake();
    };
    socket.onDrain = () => {
      for (const d of this.#drained.splice(0)) d();
    };
    socket.onClose = (err) => {
      this.#closed = err ?? new VfioError('ECONNRESET', 'the other daemon closed the takeover channel');
      closeFds(this.#fds.splice(0));
      this.#wake();
      for (const d of this.#drained.splice(0)) d();
    };
  }

  /** Connects to the takeover socket of the daemon serving now. */
  static connect(path: string): TakeoverChannel {
    return new TakeoverChannel(UnixSocket.connect(path));
  }

  get fd(): number {
    return this.#socket.fd;
  }

  /** Sends `message` and `fds` (still the caller's); resolves once the kernel has taken it all. */
  async send(message: unknown, fds: readonly number[] = []): Promise<void> {
    if (this.#closed !== null) throw this.#closed;
    const payload = serialize(message);
    const header = Buffer.alloc(HEADER);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(fds.length, 4);
    this.#socket.write(header);
    for (let i = 0; i < fds.length; i += FDS_PER_BYTE) this.#socket.write(Uint8Array.of(0), fds.slice(i, i + FDS_PER_BYTE));
    this.#socket.write(payload);
    if (this.#socket.pendingBytes > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    // (read again: the await above may have seen the channel close)
    const closed = this.#closedError();
    if (closed !== null && this.#socket.pendingBytes > 0) throw closed;
  }

  /** The next message; ETIMEDOUT after `timeoutMs`, the channel's error once it closed. */
  async receive<T>(timeoutMs: number): Promise<Received<T>> {
    const deadline = Date.now() + timeoutMs;
    const need = async (bytes: number): Promise<void> => {
      while (this.#buffered < bytes) {
        if (this.#closed) throw this.#closed;
        const left = deadline - Date.now();
        if (left <= 0) throw new VfioError('ETIMEDOUT', `the other daemon did not answer within ${timeoutMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.#waiter = resolve;
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
        this.#waiter = null;
      }
    };
    await need(HEADER);
    const header = this.#take(HEADER);
    const length = header.readUInt32LE(0);
    const fdCount = header.readUInt32LE(4);
    if (length > MAX_PAYLOAD) throw new VfioError('EMSGSIZE', `a takeover message of ${length} bytes is past the ${MAX_PAYLOAD}-byte limit`);
    const carriers = Math.ceil(fdCount / FDS_PER_BYTE);
    await need(carriers + length);
    this.#take(carriers);
    const payload = this.#take(length);
    const fds = this.#fds.splice(0);
    if (fds.length !== fdCount) {
      closeFds(fds);
      throw new VfioError('EPROTO', `a takeover message announced ${fdCount} fds and brought ${fds.length}`);
    }
    try {
      return { message: deserialize(payload) as T, fds };
    } catch (err) {
      closeFds(fds);
      throw new VfioError('EPROTO', `a takeover message cannot be read: ${(err as Error).message}`);
    }
  }

  /** The next message, which must be `op`: the other side's abort or refusal is thrown as its error. */
  async expect<K extends TakeoverMessage['op']>(op: K, timeoutMs: number): Promise<Received<Extract<TakeoverMessage, { op: K }>>> {
    const got = await this.receive<TakeoverMessage>(timeoutMs);
    const m = got.message;
    if (m.op === op) return got as Received<Extract<TakeoverMessage, { op: K }>>;
    closeFds(got.fds);
    if (m.op === 'abort' || m.op === 'refused') throw new VfioError(isErrnoName(m.code) ? m.code : 'EIO', m.message);
    throw new VfioError('EPROTO', `the other daemon said ${m.op} where ${op} was due`);
  }

  close(): void {
    this.#socket.destroy();
  }

  #closedError(): VfioError | null {
    return this.#closed;
  }

  #wake(): void {
    this.#waiter?.();
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }
}
