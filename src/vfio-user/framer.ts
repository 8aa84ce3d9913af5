/**
 * The incremental framer: turns the byte stream of a socket, delivered in
 * chunks cut at arbitrary points, back into whole vfio-user messages, and
 * gives every file descriptor that arrived with the stream to exactly one
 * owner (a message, or the caller to close).
 *
 * Lifetime of views: when a message lies whole inside one chunk, its body is
 * a view into that chunk (no copy). The socket reuses its receive buffer, so
 * `frame` and `frame.body` are valid only while `onMessage` runs; copy
 * (`copyFrame`) what must outlive the callback. Only a message split across
 * chunks is assembled into a buffer of its own.
 *
 * File descriptors: on a Linux stream socket, SCM_RIGHTS rights ride on the
 * first byte of the sendmsg() that carried them, and a recvmsg() that picks
 * them up stops right after that sendmsg's data. So the fds handed to `push`
 * belong to a message that *starts* in that chunk: the last one that starts
 * there (earlier, fd-less messages may have been glued in front).
 * The transport must call `push` once per recvmsg() with exactly the fds that
 * recvmsg() returned.
 */
import { VfioError } from '../base/errors.js';
import { u16, u32 } from './buffer-reader.js';
import { HEADER_SIZE, type MessageHeader } from './header.js';
import { commandName, DEFAULT_MAX_MESSAGE_SIZE } from './protocol.js';

/** One whole message as the framer hands it over. */
export interface Frame {
  msgId: number;
  cmd: number;
  /** msg_size: header included */
  size: number;
  flags: number;
  errorNo: number;
  /** the bytes after the header; valid only during the callback */
  body: Uint8Array;
  /**
   * fds that arrived with this message. From the callback on, the receiver
   * owns them: it must keep or close every one, even when it rejects the
   * message.
   */
  fds: number[];
}

/** Why a stream was given up: the session must end (after an error reply, if wanted). */
export interface FramingError {
  /** errno to report: EINVAL (size below the header) or EMSGSIZE (over the limit) */
  error: VfioError;
  /** the offending header, for an error reply to its msg_id */
  header: MessageHeader;
}

export interface FramerOptions {
  /** Called once per whole message, in stream order. Must not throw (see `push`). */
  onMessage: (frame: Frame) => void;
  /** Largest msg_size accepted, header included. Default: 1 MiB of data plus headers. */
  maxMessageSize?: number;
}

const NO_FDS: number[] = [];
Object.freeze(NO_FDS);

/** A copy of `frame` that may outlive the callback (body copied, fds array copied). */
export function copyFrame(frame: Frame): Frame {
  return { ...frame, body: frame.body.slice(), fds: frame.fds.slice() };
}

/** Cuts one socket's byte stream into whole messages and gives each fd one owner (see the file comment). */
export class MessageFramer {
  private readonly onMessage: (frame: Frame) => void;
  private maxSize: number;

  // A header cut by a chunk boundary is staged here.
  private readonly hdr = new Uint8Array(HEADER_SIZE);
  private hdrLen = 0;
  // A body cut by a chunk boundary is assembled here.
  private partial: Uint8Array | null = null;
  private partialLen = 0;
  private cur: MessageHeader = { msgId: 0, cmd: 0, size: 0, flags: 0, errorNo: 0 };
  // fds of the message in progress (header or body still incomplete).
  private curFds: number[] = NO_FDS;
  private failure: FramingError | null = null;
  // One frame object, reused: it is only valid during the callback anyway.
  private readonly frame: Frame = {
    msgId: 0, cmd: 0, size: 0, flags: 0, errorNo: 0, body: new Uint8Array(0), fds: NO_FDS,
  };

  constructor(options: FramerOptions) {
    this.onMessage = options.onMessage;
    this.maxSize = MessageFramer.checkLimit(options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE);
  }

  private static checkLimit(n: number): number {
    if (!Number.isSafeInteger(n) || n < HEADER_SIZE || n > 0xffff_ffff) {
      throw new VfioError('EINVAL', `max message size ${n} must be an integer in [16, 2^32)`);
    }
    return n;
  }

  /** The current limit on msg_size (header included). */
  get maxMessageSize(): number {
    return this.maxSize;
  }

  /** Changes the limit for messages whose header has not been read yet (e.g. after VERSION). */
  setMaxMessageSize(n: number): void {
    this.maxSize = MessageFramer.checkLimit(n);
  }

  /** The error that ended the stream, or null while it is healthy. */
  get error(): FramingError | null {
    return this.failure;
  }

  /** Bytes of an unfinished message held between chunks. */
  get bufferedBytes(): number {
    return this.hdrLen + this.partialLen;
  }

  /**
   * Feeds one chunk (and the fds that came with it). Emits every message the
   * chunk completes. Returns the fds the caller must close now: those no
   * message can own (no message starts in the chunk), those of a rejected
   * message, and all of them once the stream has failed. Check `error` after
   * each push: once set, the session must end. Never throws for any input;
   * if `onMessage` throws, the stream fails with EIO (the thrown value as
   * cause) and the fds not yet handed out come back here.
   */
  push(chunk: Uint8Array, fds: readonly number[] = NO_FDS): number[] {
    if (this.failure !== null) return fds.length === 0 ? NO_FDS : fds.slice();
    let unowned: number[] = fds.length === 0 ? NO_FDS : fds.slice();
    const len = chunk.length;
    let pos = 0;
    try {
      while (pos < len) {
        // 1. Finish a body begun in an earlier chunk.
        if (this.partial !== null) {
          const n = Math.min(this.partial.length - this.partialLen, len - pos);
          this.partial.set(chunk.subarray(pos, pos + n), this.partialLen);
          this.partialLen += n;
          pos += n;
          if (this.partialLen === this.partial.length) {
            const body = this.partial;
            this.partial = null;
            this.partialLen = 0;
            this.emit(body, this.takeCurFds());
          }
          continue;
        }
        // 2. Finish a header begun in an earlier chunk.
        if (this.hdrLen > 0) {
          const n = Math.min(HEADER_SIZE - this.hdrLen, len - pos);
          this.hdr.set(chunk.subarray(pos, pos + n), this.hdrLen);
          this.hdrLen += n;
          pos += n;
          if (this.hdrLen < HEADER_SIZE) break;
          this.hdrLen = 0;
          if (!this.acceptHeader(this.hdr, 0)) break;
          pos = this.startBody(chunk, pos);
          continue;
        }
        // 3. A new message starts here: decide whether it owns this chunk's fds.
        if (unowned.length > 0 && this.ownsChunkFds(chunk, pos)) {
          this.curFds = unowned;
          unowned = NO_FDS;
        }
        if (len - pos < HEADER_SIZE) {
          this.hdr.set(chunk.subarray(pos), 0);
          this.hdrLen = len - pos;
          pos = len;
          break;
        }
        if (!this.acceptHeader(chunk, pos)) break;
        pos = this.startBody(chunk, pos + HEADER_SIZE);
      }
    } catch (err) {
      this.fail(new VfioError('EIO', 'the message handler threw', { cause: err }), this.cur);
    }
    if (this.failure !== null) {
      return this.collectAfterFailure(unowned);
    }
    return unowned;
  }

  /**
   * Ends the stream (peer closed or session torn down). Returns the fds of a
   * message that never arrived whole, for the caller to close, and resets
   * the framer. `truncated` tells whether the stream stopped mid-message.
   */
  close(): { fds: number[]; truncated: boolean } {
    const truncated = this.hdrLen > 0 || this.partial !== null;
    const fds = this.takeCurFds();
    this.hdrLen = 0;
    this.partial = null;
    this.partialLen = 0;
    return { fds, truncated };
  }

  // Whether the message starting at `pos` is the one this chunk's fds belong
  // to: no other message may start after it within the chunk.
  private ownsChunkFds(chunk: Uint8Array, pos: number): boolean {
    if (chunk.length - pos < HEADER_SIZE) return true;
    const size = u32(chunk, pos + 4);
    return size < HEADER_SIZE || pos + size >= chunk.length;
  }

  // Validates the header at b[off..off+16) and makes it current. False on failure.
  private acceptHeader(b: Uint8Array, off: number): boolean {
    const h = this.cur;
    h.msgId = u16(b, off);
    h.cmd = u16(b, off + 2);
    h.size = u32(b, off + 4);
    h.flags = u32(b, off + 8);
    h.errorNo = u32(b, off + 12);
    if (h.size < HEADER_SIZE) {
      this.fail(
        new VfioError('EINVAL', `${commandName(h.cmd)} message ${h.msgId}: msg_size ${h.size} is smaller than the 16-byte header`),
        h,
      );
      return false;
    }
    if (h.size > this.maxSize) {
      this.fail(
        new VfioError('EMSGSIZE', `${commandName(h.cmd)} message ${h.msgId}: msg_size ${h.size} exceeds the limit of ${this.maxSize}`),
        h,
      );
      return false;
    }
    return true;
  }

  // The current header is accepted and its body starts at chunk[pos]. Emits or stages it.
  private startBody(chunk: Uint8Array, pos: number): number {
    const bodyLen = this.cur.size - HEADER_SIZE;
    const avail = chunk.length - pos;
    if (bodyLen <= avail) {
      this.emit(chunk.subarray(pos, pos + bodyLen), this.takeCurFds());
      return pos + bodyLen;
    }
    // Split message: its body gets a buffer of its own, sized by the checked header.
    this.partial = new Uint8Array(bodyLen);
    this.partial.set(chunk.subarray(pos), 0);
    this.partialLen = avail;
    return chunk.length;
  }

  private takeCurFds(): number[] {
    const fds = this.curFds;
    this.curFds = NO_FDS;
    return fds;
  }

  private emit(body: Uint8Array, fds: number[]): void {
    const f = this.frame;
    const h = this.cur;
    f.msgId = h.msgId;
    f.cmd = h.cmd;
    f.size = h.size;
    f.flags = h.flags;
    f.errorNo = h.errorNo;
    f.body = body;
    f.fds = fds;
    this.onMessage(f);
  }

  private fail(error: VfioError, header: MessageHeader): void {
    if (this.failure !== null) return;
    this.failure = { error, header: { ...header } };
    this.partial = null;
    this.partialLen = 0;
    this.hdrLen = 0;
  }

  // After a failure: the pending message's fds and the chunk's unowned fds go back.
  private collectAfterFailure(unowned: number[]): number[] {
    const pending = this.takeCurFds();
    if (pending.length === 0) return unowned;
    return unowned.length === 0 ? pending : pending.concat(unowned);
  }
}
