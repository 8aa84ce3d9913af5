/**
 * The incremental framer: turns the byte stream of a socket, delivered in
 * chunks cut at arbitrary points, back into whole vfio-user messages, and
 * gives every file descriptor that arrived with the stream to exactly one
 * owner (a message, or the caller to close).
 *
 * Lifetime of views: when a message lies whole inside one chunk, its body is
 * a view into that chunk (no copy). The socket reuses its receive buffer, so
 * `frame` and `frame.body` are valid only while `onMessage` runs; copy
 * (`copyFrame`) what must outlive the callback, or call keepBody() in it.
 * Only a message split across chunks is assembled into a buffer of its own:
 * a large one is borrowed from the process's pool (buffer-pool.ts), and its
 * rest can be read straight into it (bodyRoom(), filled()). The receiver
 * may instead name where the rest of a large body goes (FramerOptions.place:
 * a write's data, straight into device memory).
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
import { messageBuffers } from './buffer-pool.js';
import { commandName, DEFAULT_MAX_MESSAGE_SIZE } from './protocol.js';

/** A body cut by a chunk boundary is put together in a pooled buffer past this size, a buffer of its own below. */
const POOLED_BODY = 16 * 1024;
/** Body bytes a receiver sees before it decides where the rest of a large body goes (FramerOptions.place). */
export const PLACE_HEAD = 16;

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
  /**
   * The rest of a body the receiver had put in place (FramerOptions.place),
   * now there: `body` then holds only its first PLACE_HEAD bytes.
   */
  placed?: Uint8Array | null;
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
  /**
   * Where the rest of a large body cut by a chunk boundary goes, if not
   * into a buffer of the framer's: asked with the accepted header and the
   * body's first PLACE_HEAD bytes (when they came with the header and no
   * fds did), it returns a view of exactly the body's remaining length, or
   * null. The message is then delivered with `placed` set to that view.
   */
  place?: (header: MessageHeader, head: Uint8Array) => Uint8Array | null;
}

const NO_FDS: number[] = [];
Object.freeze(NO_FDS);

/** A copy of `frame` that may outlive the callback (body copied, a placed rest copied back behind it, fds array copied). */
export function copyFrame(frame: Frame): Frame {
  const placed = frame.placed ?? null;
  if (placed === null) return { ...frame, body: frame.body.slice(), fds: frame.fds.slice() };
  const body = new Uint8Array(frame.body.length + placed.length);
  body.set(frame.body, 0);
  body.set(placed, frame.body.length);
  return { ...frame, body, placed: null, fds: frame.fds.slice() };
}

/** Cuts one socket's byte stream into whole messages and gives each fd one owner (see the file comment). */
export class MessageFramer {
  private readonly onMessage: (frame: Frame) => void;
  private readonly place: FramerOptions['place'];
  private maxSize: number;

  // A header cut by a chunk boundary is staged here.
  private readonly hdr = new Uint8Array(HEADER_SIZE);
  private hdrLen = 0;
  // A body cut by a chunk boundary is assembled here (a view of `assembly`
  // when that is a pooled buffer).
  private partial: Uint8Array | null = null;
  private partialLen = 0;
  private assembly: Uint8Array | null = null;
  // The first body bytes of a message whose rest is received in place
  // (`partial` is then the receiver's view).
  private placedHead: Uint8Array | null = null;
  // The pooled buffer of the message being emitted, and of the last one
  // whose receiver asked to keep its body (keepBody).
  private emitting: Uint8Array | null = null;
  private kept: Uint8Array | null = null;
  private cur: MessageHeader = { msgId: 0, cmd: 0, size: 0, flags: 0, errorNo: 0 };
  // fds of the message in progress (header or body still incomplete).
  private curFds: number[] = NO_FDS;
  // msg_size of the last whole message emitted (0 before any).
  private lastMsgSize = 0;
  private failure: FramingError | null = null;
  // The last body view, reused for a message at the same place of the same
  // chunk (a socket reuses its chunk view while reads keep their length).
  private bodyView: Uint8Array = new Uint8Array(0);
  private bodyViewOf: Uint8Array | null = null;
  private bodyViewAt = -1;
  // One frame object, reused: it is only valid during the callback anyway.
  private readonly frame: Frame = {
    msgId: 0,
    cmd: 0,
    size: 0,
    flags: 0,
    errorNo: 0,
    body: new Uint8Array(0),
    fds: NO_FDS,
    placed: null,
  };

  constructor(options: FramerOptions) {
    this.onMessage = options.onMessage;
    this.place = options.place;
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

  /** msg_size of the last whole message handed over (0 before any). */
  get lastSize(): number {
    return this.lastMsgSize;
  }

  /** A message has begun and not ended: part of its header or body came. */
  get midMessage(): boolean {
    return this.hdrLen > 0 || this.partial !== null;
  }

  /** Bytes of an unfinished message held between chunks. */
  get bufferedBytes(): number {
    return this.hdrLen + this.partialLen;
  }

  /**
   * The unfinished message, for a takeover: its bytes as they arrived
   * (header and what came of its body) and the fds that came with it,
   * which stay the framer's. A new framer fed these with push() is where
   * this one is.
   */
  unfinished(): { bytes: Uint8Array; fds: readonly number[] } {
    if (this.partial !== null) {
      const head = this.placedHead ?? new Uint8Array(0);
      const bytes = new Uint8Array(HEADER_SIZE + head.length + this.partialLen);
      const h = this.cur;
      const view = new DataView(bytes.buffer);
      view.setUint16(0, h.msgId, true);
      view.setUint16(2, h.cmd, true);
      view.setUint32(4, h.size, true);
      view.setUint32(8, h.flags, true);
      view.setUint32(12, h.errorNo, true);
      bytes.set(head, HEADER_SIZE);
      bytes.set(this.partial.subarray(0, this.partialLen), HEADER_SIZE + head.length);
      return { bytes, fds: this.curFds };
    }
    return { bytes: this.hdr.slice(0, this.hdrLen), fds: this.curFds };
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
          pos += n;
          this.bodyFilled(n);
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
   * The rest of a body being put together, for a reader to receive straight
   * into (then call filled()); null when no body is under way.
   */
  bodyRoom(): Uint8Array | null {
    if (this.partial === null || this.failure !== null) return null;
    return this.partial.subarray(this.partialLen);
  }

  /**
   * `n` bytes (and the fds that came with them) were received straight into
   * bodyRoom(). Like push(): emits the message once its body is whole and
   * returns the fds the caller must close (no message starts in these bytes).
   */
  filled(n: number, fds: readonly number[] = NO_FDS): number[] {
    const unowned = fds.length === 0 ? NO_FDS : fds.slice();
    if (this.partial === null || this.failure !== null || n > this.partial.length - this.partialLen) return unowned;
    try {
      this.bodyFilled(n);
    } catch (err) {
      this.fail(new VfioError('EIO', 'the message handler threw', { cause: err }), this.cur);
    }
    return this.failure !== null ? this.collectAfterFailure(unowned) : unowned;
  }

  /**
   * Called from onMessage: the body being delivered stays valid after the
   * callback, until releaseBody(). (A body in the caller's chunk is the
   * caller's to keep; this keeps a pooled one out of the pool.)
   */
  keepBody(): void {
    if (this.emitting === null) return;
    this.kept = this.emitting;
    this.emitting = null;
  }

  /** The receiver is done with the body it kept. */
  releaseBody(): void {
    if (this.kept === null) return;
    messageBuffers.give(this.kept);
    this.kept = null;
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
    this.dropPartial();
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
      this.fail(new VfioError('EINVAL', `${commandName(h.cmd)} message ${h.msgId}: msg_size ${h.size} is smaller than the 16-byte header`), h);
      return false;
    }
    if (h.size > this.maxSize) {
      this.fail(new VfioError('EMSGSIZE', `${commandName(h.cmd)} message ${h.msgId}: msg_size ${h.size} exceeds the limit of ${this.maxSize}`), h);
      return false;
    }
    return true;
  }

  // The current header is accepted and its body starts at chunk[pos]. Emits or stages it.
  private startBody(chunk: Uint8Array, pos: number): number {
    const bodyLen = this.cur.size - HEADER_SIZE;
    const avail = chunk.length - pos;
    if (bodyLen <= avail) {
      let body = this.bodyView;
      if (this.bodyViewOf !== chunk || this.bodyViewAt !== pos || body.length !== bodyLen) {
        body = this.bodyView = chunk.subarray(pos, pos + bodyLen);
        this.bodyViewOf = chunk;
        this.bodyViewAt = pos;
      }
      this.emit(body, this.takeCurFds(), null);
      return pos + bodyLen;
    }
    if (bodyLen > POOLED_BODY && avail >= PLACE_HEAD && this.curFds.length === 0 && this.place !== undefined) {
      const into = this.place(this.cur, chunk.subarray(pos, pos + PLACE_HEAD));
      if (into !== null && into.length === bodyLen - PLACE_HEAD) {
        this.placedHead = chunk.slice(pos, pos + PLACE_HEAD);
        this.partial = into;
        into.set(chunk.subarray(pos + PLACE_HEAD), 0);
        this.partialLen = avail - PLACE_HEAD;
        return chunk.length;
      }
    }
    // Split message: its body gets a buffer of its own, sized by the checked
    // header (a large one borrowed, so a stream of large writes allocates none).
    if (bodyLen > POOLED_BODY) {
      this.assembly = messageBuffers.borrow(bodyLen);
      this.partial = this.assembly.subarray(0, bodyLen);
    } else {
      this.partial = new Uint8Array(bodyLen);
    }
    this.partial.set(chunk.subarray(pos), 0);
    this.partialLen = avail;
    return chunk.length;
  }

  // `n` more bytes of the body under way are in place: emit it when whole.
  private bodyFilled(n: number): void {
    this.partialLen += n;
    if (this.partialLen < this.partial!.length) return;
    const head = this.placedHead;
    const body = head ?? this.partial!;
    const placed = head === null ? null : this.partial;
    const pooled = this.assembly;
    this.partial = null;
    this.partialLen = 0;
    this.assembly = null;
    this.placedHead = null;
    this.emitting = pooled;
    try {
      this.emit(body, this.takeCurFds(), placed);
    } finally {
      // Not kept by the receiver: back to the pool.
      if (this.emitting !== null) messageBuffers.give(this.emitting);
      this.emitting = null;
    }
  }

  private dropPartial(): void {
    if (this.assembly !== null) messageBuffers.give(this.assembly);
    this.assembly = null;
    this.placedHead = null;
    this.partial = null;
    this.partialLen = 0;
  }

  private takeCurFds(): number[] {
    const fds = this.curFds;
    this.curFds = NO_FDS;
    return fds;
  }

  private emit(body: Uint8Array, fds: number[], placed: Uint8Array | null): void {
    const f = this.frame;
    const h = this.cur;
    f.msgId = h.msgId;
    f.cmd = h.cmd;
    f.size = h.size;
    f.flags = h.flags;
    f.errorNo = h.errorNo;
    f.body = body;
    f.fds = fds;
    f.placed = placed;
    this.lastMsgSize = h.size;
    this.onMessage(f);
  }

  private fail(error: VfioError, header: MessageHeader): void {
    if (this.failure !== null) return;
    this.failure = { error, header: { ...header } };
    this.dropPartial();
    this.hdrLen = 0;
  }

  // After a failure: the pending message's fds and the chunk's unowned fds go back.
  private collectAfterFailure(unowned: number[]): number[] {
    const pending = this.takeCurFds();
    if (pending.length === 0) return unowned;
    return unowned.length === 0 ? pending : pending.concat(unowned);
  }
}
