/**
 * UnixSocket: a nonblocking UNIX stream socket that carries fds, driven by
 * one FdWatcher. Built for the vfio-user hot path: a request and its reply
 * cost one recvmsg and one sendmsg, and no buffer is allocated per
 * message unless the kernel cannot take a write at once. The watcher makes
 * the first read of each readable event itself (its read-ahead), so a
 * request costs one call from the native layer into JavaScript and one
 * back out, for the reply; accesses of plain region memory cost none
 * (answerRegions).
 */
import { isVfioError, toVfioError, VfioError } from '../../base/errors.js';
import {
  AnswerStat,
  closeFds,
  connectUnix,
  dup,
  FdWatcher,
  READABLE,
  recvmsg,
  recvmsgWait,
  runPendingWork,
  sendmsg,
  sendmsg2,
  sendmsgWait,
  setReadAheadBuffer,
  WRITABLE,
} from '../../native/index.js';
import { LingerBackoff, lingerBackoff } from './linger-backoff.js';
import type { RegionAnswers } from './region-answers.js';

/** Handed to onData when no fds arrived, so the common case makes no array. */
const NO_FDS: readonly number[] = Object.freeze([]);

/** Reads per readable event: enough to drain a burst, few enough that one busy peer cannot starve the others. */
const MAX_READS_PER_EVENT = 16;
/**
 * Bytes one read of the shared buffer takes at most. A large message's
 * body is read straight into its own buffer (nextRead), so this only
 * bounds how many small messages one read can carry.
 */
const RECEIVE_SIZE = 64 * 1024;
/** The largest (and default) setReceiveBufferSize. */
export const MAX_RECEIVE_SIZE = RECEIVE_SIZE;
/** Bytes of the shared buffer read per readable event: a peer flooding small messages gets ~10,000 served, then the others' turn. */
const EVENT_BYTES = 256 * 1024;
/**
 * How long the rest of a large write may wait for the peer to read it
 * (sendmsgWait; plus its last 256 KiB piece and a scheduler tick) before
 * it is queued: several times what a 1 MiB reply takes when the peer reads
 * at once.
 */
const SEND_WAIT_US = 1000;
/**
 * Large writes queued without waiting after waits ran out (a LingerBackoff
 * of the socket's: 1, 3, 7 ... up to this many, halving with each wait
 * that does not run out). A peer that reads slowly, or not at all, holds
 * the thread for one wait in this many; one the scheduler kept from
 * reading once loses one write's wait.
 */
const SEND_WAIT_SKIP_MAX = 64;
/** Receive buffers kept for reuse after a holder let go of them. */
const SPARES = 2;
const EMPTY = new Uint8Array(0);

/**
 * The receive buffer every socket reads into, the watchers' read-ahead
 * included: a chunk is valid only during onData, so sockets can share one,
 * and an idle socket keeps no receive memory. A receiver that holds its
 * chunk (holdReceiveBuffer) takes that buffer out of sharing until it lets
 * go; then it is kept as a spare. Until the next one is made, read-ahead
 * reads nothing and the sockets read for themselves.
 */
let sharedRx: Uint8Array | null = null;
const spareRx: Uint8Array[] = [];
/** This module's claim on the thread's read-ahead buffer; false when another copy of it holds that. */
const READ_AHEAD_OWNER = {};
let readAheadOurs = true;

function share(rx: Uint8Array | null): void {
  sharedRx = rx;
  if (!readAheadOurs) return;
  try {
    setReadAheadBuffer(READ_AHEAD_OWNER, rx);
  } catch (err) {
    if (!isVfioError(err, 'EBUSY')) throw err;
    readAheadOurs = false;
  }
}

function receiveBuffer(): Uint8Array {
  if (sharedRx === null) share(spareRx.pop() ?? new Uint8Array(RECEIVE_SIZE));
  return sharedRx!;
}

/** Bytes the kernel has not taken yet, with the (duplicated) fds of their first byte. */
interface Pending {
  data: Uint8Array;
  fds: number[] | undefined;
}

/** Receives bytes; see UnixSocket.onData for who owns what. */
export type DataHandler = (chunk: Uint8Array, fds: readonly number[]) => void;
/** Called once when the socket closes; `err` says why unless it closed cleanly. */
export type CloseHandler = (err?: VfioError) => void;

function dupAll(fds: readonly number[]): number[] {
  const copies: number[] = [];
  try {
    for (const fd of fds) copies.push(dup(fd));
  } catch (err) {
    closeFds(copies);
    throw err;
  }
  return copies;
}

export class UnixSocket {
  /**
   * Bytes received. `chunk` is a view into a reusable receive buffer and is
   * valid only until the callback returns: copy what must outlive it. `fds`
   * arrived with the chunk holding the first byte of the write they were
   * sent with (bytes of earlier writes may precede it in the same chunk);
   * they now belong to the receiver, who must close them. The default
   * handler drops the bytes and closes the fds.
   */
  onData: DataHandler = (_chunk, fds) => closeFds(fds);
  /**
   * Called exactly once, whatever closed the socket: end of stream from the
   * peer (no error), an error (EPIPE, ECONNRESET, EMSGSIZE for lost fds...),
   * or destroy()/end() here (no error). Runs synchronously at that moment.
   */
  onClose: CloseHandler = () => {};
  /** Called when queued writes have all reached the kernel. */
  onDrain: () => void = () => {};
  /**
   * Where the receiver wants the next read to go instead of the shared
   * buffer (the rest of a large message it is putting together), or null.
   * Bytes read there are told through onFilled, not onData.
   */
  nextRead: (() => Uint8Array | null) | null = null;
  /** `n` bytes (with their fds, the receiver's now) were read into what nextRead gave. */
  onFilled: (n: number, fds: readonly number[]) => void = (_n, fds) => closeFds(fds);

  readonly #fd: number;
  readonly #watcher: FdWatcher;
  /** Bytes one read asks for. */
  #rxCap = RECEIVE_SIZE;
  /** What the watcher's read-ahead asks for: #rxCap, or 0 while reads go to nextRead's buffer. */
  #readAhead = 0;
  /** What the last read went into (a view of #intoOf), reused while the buffer and size stay. */
  #into: Uint8Array = EMPTY;
  #intoOf: Uint8Array | null = null;
  /** The last chunk (a view of #viewOf), reused while the buffer and length stay. */
  #view: Uint8Array = EMPTY;
  #viewOf: Uint8Array | null = null;
  /** True while onData runs: only then can its chunk be held. */
  #delivering = false;
  /** The receive buffer a holder keeps out of sharing (holdReceiveBuffer). */
  #heldRx: Uint8Array | null = null;
  /** Receives fds from recvmsg; emptied before onData runs. */
  readonly #fdsIn: number[] = [];
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #watching = 0;
  #reading = true;
  /** Neither reading nor writing until start() (a socket handed over by another process). */
  #idle: boolean;
  #ending = false;
  #closed = false;
  /** Messages to wait for in the same turn of the loop after a readable event (setLinger). */
  #linger = 0;
  /** Whether a large write may wait for the peer (SEND_WAIT_SKIP_MAX). */
  readonly #sendWaits = new LingerBackoff(SEND_WAIT_SKIP_MAX);
  /** Whether the rest of a large message may be waited for (recvmsgWait), backed off as #sendWaits. */
  readonly #receiveWaits = new LingerBackoff(SEND_WAIT_SKIP_MAX);
  /** The rest of a large message is due, to be read into the receiver's buffer (nextRead). */
  #bodyDue = false;
  /** Something was written since the last read began: the peer may be waiting for it (setLinger). */
  #answered = false;
  /** Bytes of a large write's data the watcher received in place before handing over its head, and where (AnswerStat.LANDED). */
  #landed = 0;
  #landedRegion = 0;
  #landedOffset = 0;
  /** Region accesses the watcher may answer (answerRegions), and its counts of them. */
  #answers: RegionAnswers | null = null;
  readonly #answerStats = new Float64Array(AnswerStat.COUNT);
  /**
   * This socket's blocker of answers at readable events: 0 only from the
   * end of an event that found them allowed (RegionAnswers.may) until
   * anything here or in the owner (holdAnswers) changes that.
   */
  readonly #answerGate = new Int32Array([1]);

  /**
   * Wraps a connected socket and starts reading, unless `idle`: then it
   * neither reads nor writes (writes queue) until start(). Takes ownership
   * of `fd`, even when it throws.
   */
  constructor(fd: number, options: { idle?: boolean } = {}) {
    this.#fd = fd;
    this.#idle = options.idle ?? false;
    try {
      this.#watcher = new FdWatcher(fd, (events, received, extra) => this.#onEvents(events, received, extra));
    } catch (err) {
      closeFds([fd]);
      throw err;
    }
    this.#watch();
  }

  /**
   * A socket the process that served it before handed over (a daemon
   * takeover), with the bytes it had not sent yet: they go first, in
   * order, each write with its fds. Idle until start(). Takes ownership
   * of `fd` and of every fd in `unsent`, even when it throws.
   */
  static adopt(fd: number, unsent: ReadonlyArray<{ data: Uint8Array; fds: readonly number[] }>): UnixSocket {
    let socket: UnixSocket;
    try {
      socket = new UnixSocket(fd, { idle: true });
    } catch (err) {
      closeFds(unsent.flatMap((u) => u.fds));
      throw err;
    }
    for (const u of unsent) {
      socket.#queue.push({ data: u.data.slice(), fds: u.fds.length > 0 ? [...u.fds] : undefined });
      socket.#queuedBytes += u.data.length;
    }
    return socket;
  }

  /**
   * After a readable event whose handling wrote to the peer (answered it),
   * or while the rest of a large message is due (nextRead), waits up to
   * `reads` more times for the next bytes in the same turn of the loop,
   * each time only after answering what came or for that rest, and as
   * long as they come before anything else wants the loop
   * (FdWatcher.linger: pending nextTicks and microtasks run first; any
   * other fd, timer or signal ends the wait). For a request-reply peer:
   * its next request costs no loop turn. 0 (the default) never waits. Not
   * while writes are queued; skipped for a while after lingers found the
   * loop busy (LingerBackoff). A lingering socket also sends the part of a
   * write its buffer cannot take as the peer reads it (up to 1 ms; see
   * sendOn), and receives the rest of a large message (64 KiB or more, into
   * nextRead's buffer) as the peer writes it (recvmsgWait, up to 1 ms,
   * backed off as the sends are).
   */
  setLinger(reads: number): void {
    this.#linger = reads;
  }

  /**
   * Lets the native layer answer region accesses of plain memory
   * itself (RegionAnswers; only with setLinger): while this socket lingers,
   * each time `answers.may()` says so right before, and at readable events
   * (up to the linger's count of reads) while neither this socket's blocker
   * nor the owner's is set. This socket's is cleared at the end of each of
   * its events that finds `may()` true, and set as soon as it queues a
   * write, pauses or ends, or holdAnswers() is called. null: never (the
   * default).
   */
  answerRegions(answers: RegionAnswers | null): void {
    if (this.#closed) return;
    this.#answerGate[0] = 1;
    if (answers === null) this.#watcher.answer(null);
    else this.#watcher.answer(this.#answerStats, answers.maxCount, answers.regions, [this.#answerGate, ...answers.blockers], this.#linger);
    this.#answers = answers;
  }

  /** No answers at readable events until the end of the next event that finds them allowed. */
  holdAnswers(): void {
    this.#answerGate[0] = 1;
  }

  /** Tells what the native layer answered so far (RegionAnswers.answered) now. */
  flushAnswers(): void {
    const stats = this.#answerStats;
    if (this.#answers !== null && (stats[AnswerStat.MESSAGES_IN] !== 0 || stats[AnswerStat.LANDED] !== 0)) this.#tookAnswers(this.#answers);
  }

  /** Begins reading and writing, for a socket made idle; a no-op otherwise. */
  start(): void {
    if (!this.#idle || this.#closed) return;
    this.#idle = false;
    this.#syncReadAhead();
    this.#watch();
  }

  /**
   * For a takeover, while paused: the fd and the bytes the kernel has not
   * taken yet, each write with the fds of its first byte. Everything stays
   * this socket's (the caller sends duplicates on); it goes on as it was
   * if the takeover is called off.
   */
  exportState(): { fd: number; unsent: Array<{ data: Uint8Array; fds: number[] }> } {
    return { fd: this.#fd, unsent: this.#queue.map((p) => ({ data: p.data, fds: p.fds ?? [] })) };
  }

  /** Connects to a listening socket at `path` (see connectUnix for the errors). */
  static connect(path: string): UnixSocket {
    return new UnixSocket(connectUnix(path));
  }

  /** The socket's fd (owned by this object). */
  get fd(): number {
    return this.#fd;
  }

  /** True once closed, whoever closed it. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written but not yet taken by the kernel. */
  get pendingBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Sends `data`, with `fds` attached to its first byte. What the kernel
   * cannot take now is copied and sent, in order, when the socket drains.
   * The caller keeps its fds and may close them as soon as this returns
   * (queued fds are duplicated). Returns false, sending nothing, when the
   * socket is closed or ending: a reply to a vanished peer is not an error.
   */
  write(data: Uint8Array, fds?: readonly number[]): boolean {
    if (this.#closed || this.#ending) return false;
    this.#answered = true;
    if (this.#queue.length > 0 || this.#idle) {
      this.#enqueue(data, fds);
    } else {
      let n: number;
      try {
        n = fds === undefined || fds.length === 0 ? sendmsg(this.#fd, data) : sendmsg(this.#fd, data, fds);
        if (n > 0 && n < data.length && this.#linger > 0) n = this.#sendOn(EMPTY, data, n);
      } catch (err) {
        return this.#writeFailed(err);
      }
      if (n === data.length) return true;
      if (n < 0) this.#enqueue(data, fds);
      else this.#enqueue(data.subarray(n), undefined);
    }
    this.#watch();
    return true;
  }

  /**
   * write() of `head` followed by `body` in one sendmsg, without
   * concatenating them (a reply header and its payload, say).
   */
  write2(head: Uint8Array, body: Uint8Array, fds?: readonly number[]): boolean {
    if (this.#closed || this.#ending) return false;
    this.#answered = true;
    let n = -1;
    if (this.#queue.length === 0 && !this.#idle) {
      try {
        n = sendmsg2(this.#fd, head, body, fds);
        if (n > 0 && n < head.length + body.length && this.#linger > 0) n = this.#sendOn(head, body, n);
      } catch (err) {
        return this.#writeFailed(err);
      }
      if (n === head.length + body.length) return true;
    }
    if (n < 0) {
      // Nothing went: the fds ride on the first byte that will.
      if (head.length > 0) {
        this.#enqueue(head, fds);
        this.#enqueue(body, undefined);
      } else {
        this.#enqueue(body, fds);
      }
    } else if (n < head.length) {
      this.#enqueue(head.subarray(n), undefined);
      this.#enqueue(body, undefined);
    } else {
      this.#enqueue(body.subarray(n - head.length), undefined);
    }
    this.#watch();
    return true;
  }

  /**
   * The kernel took `sent` bytes of head + body, not all: a lingering
   * socket (setLinger) sends the rest as a blocking sendmsg would, the
   * peer reading each piece as it goes, for up to SEND_WAIT_US
   * (sendmsgWait), rather than copying it into the queue and sending it
   * piece by piece from the loop. Returns the bytes sent in all.
   */
  #sendOn(head: Uint8Array, body: Uint8Array, sent: number): number {
    if (!this.#sendWaits.tryNow()) return sent;
    const n =
      sent < head.length
        ? sendmsgWait(this.#fd, head.subarray(sent), body, SEND_WAIT_US)
        : sendmsgWait(this.#fd, EMPTY, body.subarray(sent - head.length), SEND_WAIT_US);
    if (n > 0) sent += n;
    if (sent < head.length + body.length) this.#sendWaits.busy();
    else this.#sendWaits.got();
    return sent;
  }

  /** Stops reading (the peer's writes then back up); resume() restarts. */
  pause(): void {
    this.#answerGate[0] = 1;
    this.#reading = false;
    this.#watch();
  }

  /** Reads again after pause(). */
  resume(): void {
    if (this.#closed || this.#ending) return;
    this.#reading = true;
    this.#watch();
  }

  /** The most one read of the shared buffer takes (default and largest: 64 KiB). */
  setReceiveBufferSize(max: number): void {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new VfioError('EINVAL', `receive buffer size must be a positive integer, not ${max}`);
    }
    this.#rxCap = Math.min(max, RECEIVE_SIZE);
    if (!this.#closed) this.#syncReadAhead();
  }

  /**
   * Called from onData: keeps the chunk being delivered as it is until
   * releaseReceiveBuffer(), for a receiver whose work on it outlives the
   * callback. Its buffer leaves the sharing meanwhile (reads, this
   * socket's and the others', go to another one). A no-op outside onData.
   */
  holdReceiveBuffer(): void {
    if (!this.#delivering || this.#heldRx !== null || this.#viewOf === null) return;
    this.#heldRx = this.#viewOf;
    if (sharedRx === this.#viewOf) share(null);
  }

  /** The receiver is done with the chunk it held: its buffer may be reused. */
  releaseReceiveBuffer(): void {
    const rx = this.#heldRx;
    if (rx === null) return;
    this.#heldRx = null;
    if (sharedRx === null) share(rx);
    else if (spareRx.length < SPARES) spareRx.push(rx);
  }

  /** Keeps the process alive while this socket waits (the default). */
  ref(): void {
    if (!this.#closed) this.#watcher.ref();
  }

  /** Lets the process exit even while this socket waits. */
  unref(): void {
    if (!this.#closed) this.#watcher.unref();
  }

  /** Stops reading, sends what is queued, then closes. */
  end(): void {
    if (this.#closed) return;
    this.#answerGate[0] = 1;
    this.#ending = true;
    this.#reading = false;
    if (this.#queue.length === 0 || this.#idle) this.#close(undefined);
    else this.#watch();
  }

  /** Closes now: queued bytes are dropped and their fds closed. Idempotent. */
  destroy(): void {
    this.#close(undefined);
  }

  #onEvents(events: number, received: number | undefined, extra: number[] | Error | undefined): void {
    // What the native layer answered went before whatever is read now.
    this.flushAnswers();
    // Read first: a peer that wrote and then hung up gets its bytes delivered.
    if ((events & READABLE) !== 0) {
      this.#answered = false;
      this.#readEvent(received, extra);
    }
    if ((events & WRITABLE) !== 0 && !this.#closed) this.#flush();
    if (!this.#closed) this.#syncReadAhead();
    if ((events & READABLE) !== 0) this.#lingerOn();
    if (this.#answers !== null) this.#answerGate[0] = this.#mayAnswer() ? 0 : 1;
  }

  /** Whether the native layer may answer now (the owner's say included). */
  #mayAnswer(): boolean {
    return this.#mayLinger() && !this.#bodyDue && this.#answers!.may();
  }

  /** Reads what comes next while it comes before anything else wants the loop (setLinger). */
  #lingerOn(): void {
    // Only after answering, or for the rest of a large message received in
    // place: a peer that streams without waiting for replies (posted
    // writes) fills bigger reads through the loop.
    if (this.#linger === 0 || !(this.#answered || this.#bodyDue) || !lingerBackoff.tryNow()) return;
    for (let i = 0; i < this.#linger; i++) {
      if (!this.#mayLinger() || !(this.#answered || this.#bodyDue)) return;
      this.#answered = false;
      // Here rather than in linger(): cheaper, and what it runs may close,
      // pause or fill this socket.
      const ran = runPendingWork();
      if (!this.#mayLinger()) return;
      const answers = this.#answers;
      const answering = answers !== null && this.#mayAnswer();
      const r = this.#watcher.linger(ran, answering ? this.#linger - i : 0);
      if (answering) i += this.#tookAnswers(answers);
      if (r === null) {
        lingerBackoff.got(); // every read it was allowed was answered
        return;
      }
      if (r === false) {
        if (!this.#closed && this.#reading) lingerBackoff.busy(); // else it was its own doing, not the loop's
        return;
      }
      lingerBackoff.got();
      if (typeof r === 'object') this.#readEvent(r[0], r[1]);
      else this.#readEvent(r === true ? undefined : r, undefined);
      if (this.#closed) return;
      this.#syncReadAhead();
    }
  }

  /**
   * After a linger that could answer: what it answered goes to the owner's
   * counts, the rest of a reply the kernel did not take to the head of the
   * queue (before anything else is sent). Returns the reads it answered.
   */
  #tookAnswers(answers: RegionAnswers): number {
    const stats = this.#answerStats;
    const messages = stats[AnswerStat.MESSAGES_IN]!;
    if (stats[AnswerStat.LANDED] !== 0) {
      this.#landed = stats[AnswerStat.LANDED]!;
      this.#landedRegion = stats[AnswerStat.LANDED_REGION]!;
      this.#landedOffset = stats[AnswerStat.LANDED_OFFSET]!;
      stats[AnswerStat.LANDED] = 0;
    }
    if (messages === 0) return 0;
    const reads = stats[AnswerStat.READS]!;
    if (stats[AnswerStat.UNSENT] !== 0) {
      // The queue was empty: answering requires it.
      const rest = this.#watcher.takeUnsent();
      this.#answerGate[0] = 1;
      this.#queue.push({ data: rest, fds: undefined });
      this.#queuedBytes += rest.length;
      this.#watch();
    }
    const replies = stats[AnswerStat.REPLIES_OUT]!;
    if (replies !== 0) this.#answered = true;
    answers.answered(messages, stats[AnswerStat.BYTES_IN]!, replies, stats[AnswerStat.BYTES_OUT]!);
    stats.fill(0);
    return reads;
  }

  /**
   * The watcher gave the head of a large REGION_WRITE (delivered just now)
   * after receiving #landed bytes of its data in place: the receiver,
   * given that head, wants the data in the same place (nextRead), and is
   * told they came. Anything else would put the stream out of step: the
   * connection is closed.
   */
  #tookLanded(): void {
    const landed = this.#landed;
    this.#landed = 0;
    const into = this.nextRead === null ? null : this.nextRead();
    const memory = this.#answers?.regions[this.#landedRegion]?.write ?? null;
    const at = memory === null ? -1 : memory.byteOffset + this.#landedOffset;
    if (into === null || memory === null || into.length < landed || into.buffer !== memory.buffer || into.byteOffset !== at) {
      this.#close(new VfioError('EIO', `the receiver did not take a write's data where ${landed} bytes of it landed`));
      return;
    }
    this.onFilled(landed, NO_FDS);
  }

  #mayLinger(): boolean {
    return !this.#closed && this.#reading && !this.#idle && this.#queue.length === 0;
  }

  /**
   * One readable event's reads, or one linger's: the watcher's read-ahead
   * when it made one (`received`, with its fds or error in `extra`), then
   * on while more may be waiting.
   */
  #readEvent(received: number | undefined, extra: number[] | Error | undefined): void {
    if (received !== undefined) {
      if (this.#tookReadAhead(received, extra) && this.#reading) this.#readSome(1, EVENT_BYTES - received);
    } else if (this.#reading) {
      this.#readSome();
    }
  }

  /** Delivers what the watcher read ahead; true when more may be waiting (it filled its read). */
  #tookReadAhead(n: number, extra: number[] | Error | undefined): boolean {
    if (n < 0) {
      if (extra instanceof Error) this.#close(toVfioError(extra));
      return false;
    }
    if (n === 0) {
      this.#close(undefined);
      return false;
    }
    // The watcher read into the shared buffer as it is now: nothing ran in between.
    this.#deliver(sharedRx!, n, Array.isArray(extra) ? extra : NO_FDS);
    if (this.#landed !== 0 && !this.#closed) this.#tookLanded();
    return !this.#closed && n === this.#readAhead;
  }

  /**
   * Read-ahead goes to the shared buffer, except while the receiver wants
   * the bytes in a buffer of its own (nextRead): then this socket reads.
   */
  #syncReadAhead(): void {
    const direct = this.nextRead !== null && this.nextRead() !== null;
    this.#bodyDue = direct;
    let want = 0;
    if (!direct) {
      receiveBuffer(); // the native buffer is set (and this module's) before any read-ahead
      if (readAheadOurs) want = this.#rxCap;
    }
    if (want === this.#readAhead) return;
    this.#readAhead = want;
    this.#watcher.readAhead(want);
  }

  /** Reads on until the socket is empty or this event's share is used (`reads` reads and `budget` bytes left of it). */
  #readSome(reads = 0, budget = EVENT_BYTES): void {
    for (let i = reads; i < MAX_READS_PER_EVENT && budget > 0; i++) {
      const direct = this.nextRead === null ? null : this.nextRead();
      if (direct !== null && direct.length > 0) {
        if (!this.#readDirect(direct)) return;
        continue;
      }
      const rx = receiveBuffer();
      const size = this.#rxCap;
      let into = this.#into;
      if (this.#intoOf !== rx || into.length !== size) {
        into = this.#into = rx.subarray(0, size);
        this.#intoOf = rx;
      }
      let n: number;
      try {
        n = recvmsg(this.#fd, into, this.#fdsIn);
      } catch (err) {
        this.#close(toVfioError(err));
        return;
      }
      if (n < 0) return;
      if (n === 0) {
        this.#close(undefined);
        return;
      }
      this.#deliver(rx, n, this.#fdsIn.length === 0 ? NO_FDS : this.#fdsIn.splice(0));
      if (this.#closed || !this.#reading) return;
      // A short read means the socket is empty for now: skip the recvmsg
      // that would only say EAGAIN. The poll is level-triggered, so bytes
      // that are still there (a read stops after a write that carried fds)
      // raise another event.
      if (n < size) return;
      budget -= n;
    }
  }

  /** Hands rx[0, n) and its fds to onData. */
  #deliver(rx: Uint8Array, n: number, fds: readonly number[]): void {
    let view = this.#view;
    if (this.#viewOf !== rx || view.length !== n) {
      view = this.#view = rx.subarray(0, n);
      this.#viewOf = rx;
    }
    this.#delivering = true;
    try {
      this.onData(view, fds);
    } finally {
      this.#delivering = false;
    }
  }

  /** One read into the receiver's own buffer; false when reading should stop for now. */
  #readDirect(into: Uint8Array): boolean {
    let n: number;
    try {
      if (this.#linger > 0 && into.length >= RECEIVE_SIZE && this.#receiveWaits.tryNow()) {
        n = recvmsgWait(this.#fd, into, SEND_WAIT_US, this.#fdsIn);
        if (n === into.length) this.#receiveWaits.got();
        else this.#receiveWaits.busy();
      } else {
        n = recvmsg(this.#fd, into, this.#fdsIn);
      }
    } catch (err) {
      this.#close(toVfioError(err));
      return false;
    }
    if (n < 0) return false;
    if (n === 0) {
      this.#close(undefined);
      return false;
    }
    const fds = this.#fdsIn.length === 0 ? NO_FDS : this.#fdsIn.splice(0);
    this.onFilled(n, fds);
    return !this.#closed && this.#reading && n === into.length;
  }

  #flush(): void {
    const queue = this.#queue;
    while (queue.length > 0) {
      const head = queue[0]!;
      let n: number;
      try {
        n = head.fds === undefined ? sendmsg(this.#fd, head.data) : sendmsg(this.#fd, head.data, head.fds);
      } catch (err) {
        this.#close(toVfioError(err));
        return;
      }
      if (n < 0) return;
      if (head.fds !== undefined) {
        // Sent with that first byte; these were our duplicates.
        closeFds(head.fds);
        head.fds = undefined;
      }
      this.#queuedBytes -= n;
      if (n < head.data.length) {
        head.data = head.data.subarray(n);
        return;
      }
      queue.shift();
    }
    if (this.#ending) {
      this.#close(undefined);
      return;
    }
    this.#watch();
    this.onDrain();
  }

  /** Queues a copy of `data` (only what is left to send) and duplicates of `fds`. */
  #enqueue(data: Uint8Array, fds: readonly number[] | undefined): void {
    this.#answerGate[0] = 1; // an answer must not pass what waits here
    const withFds = fds !== undefined && fds.length > 0;
    if (data.length === 0) {
      if (withFds) throw new VfioError('EINVAL', 'fds need at least one byte to travel with');
      return;
    }
    this.#queue.push({ data: data.slice(), fds: withFds ? dupAll(fds) : undefined });
    this.#queuedBytes += data.length;
  }

  #writeFailed(err: unknown): false {
    const error = toVfioError(err);
    // Bad arguments are the caller's bug and leave the socket as it was.
    if (isVfioError(error, 'EINVAL')) throw error;
    this.#close(error);
    return false;
  }

  #watch(): void {
    if (this.#closed || this.#idle) return;
    const want = (this.#reading ? READABLE : 0) | (this.#queue.length > 0 ? WRITABLE : 0);
    if (want === this.#watching) return;
    this.#watching = want;
    if (want === 0) this.#watcher.stop();
    else this.#watcher.start(want);
  }

  #close(err: VfioError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#answerGate[0] = 1;
    this.flushAnswers();
    this.#answers = null;
    this.#watcher.close();
    for (const pending of this.#queue) {
      if (pending.fds !== undefined) closeFds(pending.fds);
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    closeFds([this.#fd]);
    this.onClose(err);
  }
}
