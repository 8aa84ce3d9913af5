/**
 * One client of one device, whatever carries its messages (a Transport:
 * a UNIX socket, or memory): the client's open file on the device and its
 * DMA address space, the eventfds it handed over, and (when negotiated)
 * its twin channel for the server's DMA messages.
 *
 * Commands are served strictly in order. A handler that finishes at once
 * (the device answered synchronously) is the hot path: no queue, no
 * promise, no buffer. A handler that goes asynchronous makes the
 * session busy; commands arriving meanwhile are copied into a queue and
 * served when it settles. Replies to the server's own DMA messages are
 * never queued: a busy handler may be the one waiting for them.
 *
 * Teardown runs once, whatever ends the session (the client closing, a
 * kill -9, garbage on the wire, the server closing): the transports close, the
 * file closes (close_device runs if it was the device's last), the address
 * space is destroyed (every mapping unmapped, mapped memory released), and
 * the eventfds are closed. The device's state is kept.
 *
 * Each session has an id (unique in the process), the identity of the
 * client process, counters, and publishes what it does on the trace
 * channels of trace.ts while anyone subscribes.
 */
import { hrtime } from 'node:process';
import type { DeviceFile } from '../core/device-file.js';
import { OverBudget } from '../base/budget.js';
import { toVfioError, VfioError } from '../base/errors.js';
import { DmaProt } from '../base/uapi.js';
import type { DmaBacking } from '../iommufd/dma-backing.js';
import { fdBacking } from '../iommufd/fd-backing.js';
import { IommufdContext } from '../iommufd/context.js';
import { closeFds } from '../native/index.js';
import { MessageDmaBacking } from './client-memory.js';
import { u32 } from './buffer-reader.js';
import { readCommand, type ClientIdentity } from './client-identity.js';
import { replyBuffers } from './buffer-pool.js';
import type { DecodeContext } from './context.js';
import { newCounters, type SessionCounters } from './counters.js';
import { SessionDeviceShape } from './device-shape.js';
import { dispatch } from './dispatch.js';
import { DmaChannel } from './dma-channel.js';
import { copyFrame, type Frame, type FramingError } from './framer.js';
import type { Request, Session } from './handlers/handler.js';
import { checkCommand, HEADER_SIZE, isCommand, hasErrorFlag, wantsNoReply, type MessageHeader } from './header.js';
import { decodeRegionWriteHead } from './decoder.js';
import { IrqNotifiers } from './irq-notifiers.js';
import { ServerBudgets, type ClientBudgets } from './limits.js';
import type { RegionAccess } from './messages.js';
import type { Negotiated, ServerLimits } from './negotiation.js';
import { Command, commandName, maxMessageSizeFor } from './protocol.js';
import { writeEmptyReply, writeErrorReply } from './serializer.js';
import { negotiatedFromState, negotiatedToState, type SessionState, type SocketState } from './session-state.js';
import { interruptChannel, messageChannel, messageTraceCell, sessionChannel, type DmaOwner, type MessageTrace } from './trace.js';
import { MAX_ANSWER_REGIONS, type AnswerRegion, type RegionAnswers } from './transport/region-answers.js';
import { SocketTransport } from './transport/socket-transport.js';
import type { Transport, TransportHandover } from './transport/transport.js';

/** Where a server reports what it cannot answer on the wire (the daemon's Logger fits). */
export interface ServerLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

const NO_FDS: number[] = Object.freeze([]) as unknown as number[];
const EMPTY = new Uint8Array(0);
/** What a queued command costs beyond its bytes (its Frame and the queue's slot), for request-queue. */
const QUEUED_OVERHEAD = 128;
/** A client that keeps sending while the session must keep reading it is dropped at this many times request-queue. */
const QUEUE_HARD_FACTOR = 4;
/** Reply buffers up to this size are the session's own; larger ones are borrowed per reply (buffer-pool.ts). */
const OWN_REPLY_MAX = 16 * 1024;
/** A client past its limits is logged at most once per this long (the rest are counted). */
const LIMIT_LOG_INTERVAL_MS = 1_000;

let nextSessionId = 1;

export interface SessionOptions {
  /** The file opened for this client (the session closes it). */
  file: DeviceFile;
  /** What carries the client's messages (the session owns it). */
  transport: Transport;
  /** Who connected (the command may be filled in later). */
  identity: ClientIdentity;
  limits: ServerLimits;
  /** The client's budgets (its shares of the server's); when absent, its own at the limits' values. */
  budgets?: ClientBudgets;
  log: ServerLog;
  /** Called once, after teardown completed. */
  onClosed: (session: VfioUserSession) => void;
  /** When the client connected, ms since the epoch (another process's session taken over); default now. */
  connectedAt?: number;
  /** By when VERSION must succeed, ms since the epoch; default now + version-timeout. */
  versionDeadline?: number;
  /** Serve nothing and read nothing until thaw() (a session being taken over: see restore()). */
  frozen?: boolean;
}

/** The server's side of one client (see the file comment). */
export class VfioUserSession implements Session {
  /** Unique in the process: how traces and ClientInfo name this session. */
  readonly id = nextSessionId++;
  readonly identity: ClientIdentity;
  /** ms since the epoch */
  readonly connectedAt: number;
  /** Bumped in place as things happen; see counters.ts. */
  readonly #counters: SessionCounters = newCounters();
  readonly file: DeviceFile;
  readonly limits: ServerLimits;
  iommufd: IommufdContext | null = null;
  negotiated: Negotiated | null = null;
  shape: SessionDeviceShape | null = null;
  dma: DmaChannel | null = null;
  readonly notifiers: IrqNotifiers;
  readonly budgets: ClientBudgets;
  readonly access: RegionAccess = { offset: 0, region: 0, count: 0, data: EMPTY };
  readonly decode: DecodeContext;

  readonly #transport: Transport;
  readonly #log: ServerLog;
  readonly #onClosed: (session: VfioUserSession) => void;
  #twin: Transport | null = null;
  /** The client's end of a twin socket just made, for establish() to return. */
  #twinPeerFd: number | null = null;

  /** The request being served, reused (commands are served one at a time). */
  readonly #req: Request = { msgId: 0, cmd: 0, flags: 0, body: EMPTY, fds: NO_FDS, placed: null };
  #queue: Frame[] = [];
  #queuedBytes = 0;
  #busy = false;
  #paused = false;
  /** Replies wait for the client to read them past reply-queue: nothing more is served or read. */
  #repliesWaiting = false;
  /** Drops the client that has not completed VERSION in time; null once it has. */
  #versionTimer: NodeJS.Timeout | null = null;
  /** ms since the epoch by which VERSION must succeed. */
  readonly #versionDeadline: number;
  /** A takeover is under way: nothing is read (but awaited DMA replies) or served. */
  #frozen: boolean;
  /** freeze()'s callers, told once the session is idle (no command served, no DMA reply awaited). */
  #idleWaiters: Array<() => void> = [];
  #endAfterReply = false;
  /** A framing failure met while commands were pending: answered in turn. */
  #framingFailure: FramingError | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Why the session ends, once something decided it should. */
  #endReason: string | null = null;
  /**
   * The read of the client's command line, settled or given up on within
   * cmdline-timeout: VERSION and teardown wait for it (so a bound client's
   * is known, and no read outlives its session); a read stuck longer
   * finishes in the background.
   */
  readonly #commandRead: Promise<void>;
  /** The command being traced (only while someone subscribes). */
  #trace: MessageTrace | null = null;
  #traceStart = 0n;
  /** What the traced command caused (interrupts, its session bound), published after it. */
  #traceAfter: Array<() => void> = [];

  /** The session's own reply buffer (at most OWN_REPLY_MAX). */
  #ownReply = new Uint8Array(256);
  /** A larger one borrowed for the current reply, given back after it. */
  #lentReply: Uint8Array | null = null;
  /** The buffer the views below are of. */
  #replyBuf: Uint8Array = this.#ownReply;
  #viewSize = -1;
  #view: Uint8Array = EMPTY;
  #sliceStart = -1;
  #sliceCount = -1;
  #slice: Uint8Array = EMPTY;
  readonly #errBuf = new Uint8Array(16);
  #limitLoggedAt = -Infinity;
  #limitLogsHeld = 0;

  constructor(options: SessionOptions) {
    this.identity = options.identity;
    this.connectedAt = options.connectedAt ?? Date.now();
    this.#frozen = options.frozen ?? false;
    this.file = options.file;
    this.limits = options.limits;
    this.budgets = options.budgets ?? new ServerBudgets(options.limits).client();
    this.notifiers = new IrqNotifiers({
      onTrigger: (index, vector) => this.#signalled(index, vector),
      budget: this.budgets.irqFds,
      onFull: () =>
        options.log.warn("vfio-user client's interrupt eventfd is full: its interrupts are coalesced", {
          device: this.file.device.name,
          client: this.id,
          pid: this.identity.pid,
          clientCommand: this.identity.command,
        }),
    });
    this.#transport = options.transport;
    this.#log = options.log;
    this.#onClosed = options.onClosed;
    this.decode = { maxDataXferSize: options.limits.maxDataXferSize };
    this.#transport.onMessage = (frame) => this.#onFrame(frame);
    this.#transport.onBroken = (failure) => this.#onBroken(failure);
    this.#transport.onClose = (err) => void this.#teardown(err);
    this.#transport.onDrain = () => this.#repliesLeft();
    this.#transport.placeBody = (header, head) => this.#placeWrite(header, head);
    const deadline = this.limits.versionTimeoutMs;
    this.#versionDeadline = options.versionDeadline ?? Date.now() + deadline;
    this.#versionTimer = setTimeout(
      () => {
        this.#versionTimer = null;
        if (this.negotiated !== null || this.#closed) return;
        this.#log.info('vfio-user client dropped: no VFIO_USER_VERSION in time', {
          device: this.file.device.name,
          client: this.id,
          pid: this.identity.pid,
          limit: 'version-timeout',
        });
        void this.close(`no VFIO_USER_VERSION within ${deadline} ms`);
      },
      Math.max(0, this.#versionDeadline - Date.now()),
    );
    this.#versionTimer.unref();
    this.#commandRead = this.identity.command === null ? within(readCommand(this.identity), this.limits.cmdlineTimeoutMs) : Promise.resolve();
    if (sessionChannel.hasSubscribers) {
      const { pid, uid, gid } = this.identity;
      sessionChannel.publish({ event: 'opened', device: this.file.device.name, client: this.id, pid, uid, gid, connectedAt: this.connectedAt });
    }
  }

  /** True once teardown began. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once VFIO_USER_VERSION succeeded (the file is bound). */
  get bound(): boolean {
    return this.negotiated !== null;
  }

  /** What the session has done (counters.ts), with what the transport answered itself so far; bumped in place. */
  get counters(): SessionCounters {
    this.#transport.flushAnswers();
    return this.#counters;
  }

  /**
   * Drops the client (`reason` goes to the log's and trace's closing
   * record); resolves once teardown completed. Idempotent.
   */
  close(reason = 'the server dropped the client'): Promise<void> {
    this.#transport.holdAnswers();
    this.#endReason ??= reason;
    return this.#teardown();
  }

  // ---- takeover ---------------------------------------------------------------

  /**
   * A daemon takeover begins: nothing more is read (except the client's
   * answers to DMA messages awaited on the main socket) and nothing more
   * is served (commands that arrive are queued). Resolves once no command
   * is being served and no DMA message awaits its answer, or the session
   * ended: then exportState() may run, if `handsOver`.
   */
  freeze(): Promise<void> {
    this.#frozen = true;
    this.#transport.holdAnswers();
    this.#updateReading();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#checkIdle();
    });
  }

  /**
   * Serves again: the takeover was called off, or this session was taken
   * over from another process (restore()) and the takeover committed.
   * Queued commands are served first, in order.
   */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    if (this.#closed) return;
    this.#transport.start();
    this.#twin?.start();
    this.#updateReading();
    this.#drain();
  }

  /** True when a takeover can move this session: frozen, idle and not ending (one that is ends with its process). */
  get handsOver(): boolean {
    return this.#frozen && !this.#busy && (this.dma?.waiting ?? 0) === 0 && !this.#closed && !this.#endAfterReply && this.#framingFailure === null;
  }

  /**
   * The whole session, for the next process (see session-state.ts); its
   * fds are appended to `fds` (they stay this session's: the caller sends
   * duplicates) and the state names them by index there. EBUSY unless
   * `handsOver`; EOPNOTSUPP for a transport that cannot leave the process.
   */
  exportState(fds: number[]): SessionState {
    if (!this.handsOver) throw new VfioError('EBUSY', `${this.file.device.name}: client ${this.id} is not frozen and idle`);
    const at = (fd: number): number => fds.push(fd) - 1;
    const socket = (t: TransportHandover | null): SocketState => {
      if (t === null) throw new VfioError('EOPNOTSUPP', `${this.file.device.name}: client ${this.id}'s transport cannot go to another process`);
      return {
        fd: at(t.fd),
        inbound: { bytes: t.inbound.bytes, fds: t.inbound.fds.map(at) },
        unsent: t.unsent.map((u) => ({ data: u.data, fds: u.fds.map(at) })),
      };
    };
    const mappings = this.iommufd?.alive ? this.iommufd.ioas.list() : [];
    return {
      identity: { ...this.identity },
      connectedAt: this.connectedAt,
      counters: { ...this.counters },
      negotiated: this.negotiated === null ? null : negotiatedToState(this.negotiated),
      versionDeadline: this.negotiated === null ? this.#versionDeadline : null,
      socket: socket(this.#transport.exportState()),
      twin: this.#twin === null ? null : socket(this.#twin.exportState()),
      queued: this.#queue.map((f) => ({ msgId: f.msgId, cmd: f.cmd, flags: f.flags, size: f.size, body: f.body, fds: f.fds.map(at) })),
      dma: mappings.map((m) => ({
        iova: m.iova,
        size: m.length,
        prot: m.prot,
        fd: m.backing.file === undefined ? null : at(m.backing.file.fd),
        offset: m.backing.file === undefined ? 0 : m.backing.file.offset + m.backingOffset,
      })),
      irqs: this.notifiers.triggers().map((t) => ({ index: t.index, vector: t.vector, fd: at(t.notifier.fd) })),
    };
  }

  /**
   * Takes over the session `state` another process exported, this session
   * being new and frozen over its adopted transport: binds the file as
   * VERSION did there, adopts the twin socket, maps the client's memory
   * again (within this server's budgets), attaches its eventfds where they
   * were (DeviceFile.adoptIrqs: no side effect on the device, whose state
   * came with its migration stream) and queues the commands not served
   * yet. `take(i)` gives the fd of index i, this session's from then on.
   * On failure the caller closes the session.
   */
  async restore(state: SessionState, take: (index: number) => number): Promise<void> {
    Object.assign(this.#counters, state.counters);
    let queuedBytes = 0;
    this.#queue = state.queued.map((q) => {
      queuedBytes += q.size + QUEUED_OVERHEAD;
      return { msgId: q.msgId, cmd: q.cmd, flags: q.flags, size: q.size, errorNo: 0, body: q.body, fds: q.fds.map(take) };
    });
    this.#queuedBytes = queuedBytes;
    if (state.negotiated === null) return;
    const negotiated = negotiatedFromState(state.negotiated);
    const twin = state.twin;
    await this.#bind(negotiated, () => {
      if (twin !== null)
        this.#useTwin(SocketTransport.adopt(adoptedSocket(twin, take), { maxMessageSize: maxMessageSizeFor(negotiated.maxDataXferSize) }));
    });
    const ioas = this.iommufd!.ioas;
    for (const m of state.dma) {
      let backing: DmaBacking | null = null;
      if (m.fd !== null) {
        const reach = fdBacking(take(m.fd), m.offset, m.size, (m.prot & DmaProt.WRITE) !== 0, this.budgets);
        backing = reach.backing;
      }
      backing ??= new MessageDmaBacking(this.dma!, m.iova, m.size);
      try {
        ioas.map(m.iova, m.size, backing, { prot: m.prot });
      } catch (err) {
        backing.release();
        throw err;
      }
    }
    for (const q of state.irqs) {
      const [n] = this.notifiers.adopt([take(q.fd)], { index: q.index, action: 'trigger', start: q.vector });
      try {
        await this.file.adoptIrqs({ index: q.index, start: q.vector, count: 1, action: 'trigger', data: 'eventfd', values: [n!] });
      } catch (err) {
        n!.close();
        throw err;
      }
      this.notifiers.assigned(q.index, 'trigger', q.vector, [n!]);
    }
    if (this.#transport.pendingBytes > this.limits.replyQueueBytes) this.#repliesWaiting = true;
  }

  /** Tells freeze()'s callers once the session is idle (or gone). */
  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    if (!this.#closed && (this.#busy || (this.dma?.waiting ?? 0) > 0)) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  // ---- Session ---------------------------------------------------------------

  async establish(negotiated: Negotiated): Promise<number | null> {
    await this.#bind(negotiated, () => (negotiated.twinSocket ? this.#openTwin() : null));
    const theirs = this.#twinPeerFd;
    this.#twinPeerFd = null;
    if (sessionChannel.hasSubscribers) {
      const bound = {
        event: 'bound',
        device: this.file.device.name,
        client: this.id,
        version: negotiated.version,
        capabilities: negotiated.reply,
      } as const;
      // VERSION bound the session: told after the VERSION it answers, when that is traced.
      if (this.#trace !== null) this.#traceAfter.push(() => sessionChannel.publish(bound));
      else sessionChannel.publish(bound);
    }
    return theirs;
  }

  /**
   * What VERSION's success does, here or (a takeover) in the process that
   * served the client before: binds the file to a new context (open_device
   * for the device's first client), reads the device's shape, sets the
   * transport up for the agreed sizes, makes the twin channel (`twin`),
   * and opens the DMA channel.
   */
  async #bind(negotiated: Negotiated, twin: () => void): Promise<void> {
    const ctx = new IommufdContext({ mappings: this.budgets.dmaMaps(negotiated.maxDmaMaps) });
    ctx.ioas.traceOwner = { device: this.file.device.name, client: this.id } satisfies DmaOwner;
    this.iommufd = ctx;
    await this.file.bindIommufd(ctx);
    const shape = await SessionDeviceShape.load(this.file);
    await this.#commandRead;
    if (this.#closed) throw new VfioError('ENOTCONN', 'the client went away during VFIO_USER_VERSION');
    this.shape = shape;
    this.decode.device = shape;
    this.decode.maxDataXferSize = negotiated.maxDataXferSize;
    this.decode.dmaLayout = negotiated.dmaLayout;
    this.decode.dmaPageSize = negotiated.dmaPageSize;
    this.#transport.setMaxMessageSize(maxMessageSizeFor(negotiated.maxDataXferSize));
    twin();
    this.dma = new DmaChannel({
      send: (message) => {
        this.#counters.bytesOut += message.length;
        const sent = (this.#twin ?? this.#transport).send(message);
        // Its reply comes on the main channel without a twin: read it even
        // when a backlog paused reading.
        this.#updateReading();
        return sent;
      },
      layout: negotiated.dmaLayout,
      maxXfer: negotiated.dmaMaxXfer,
      timeoutMs: this.limits.dmaTimeoutMs,
    });
    this.negotiated = negotiated;
    this.#transport.answerRegions(this.#regionAnswers(shape, negotiated.maxDataXferSize));
    if (this.#versionTimer !== null) clearTimeout(this.#versionTimer);
    this.#versionTimer = null;
  }

  /**
   * What the transport may answer itself (RegionAnswers): accesses of the
   * regions the device gives whole as plain memory, whenever one
   * would be served at once here. Null when the device gives none.
   */
  #regionAnswers(shape: SessionDeviceShape, maxCount: number): RegionAnswers | null {
    const regions: Array<AnswerRegion | undefined> = [];
    for (let i = 0; i < Math.min(shape.numRegions, MAX_ANSWER_REGIONS); i++) {
      const size = shape.regionSize(i);
      const memory = size > 0 ? this.file.wholeRegionMemory(i, size) : null;
      regions.push(memory !== null && (memory.read !== null || memory.write !== null) ? memory : undefined);
    }
    if (!regions.some((r) => r !== undefined)) return null;
    return {
      regions,
      maxCount,
      may: () => this.#mayAnswer(),
      // What #mayAnswer asks that can change while this session runs nothing.
      blockers: [this.file.lockBusyCell, messageTraceCell],
      answered: (messages, bytesIn, replies, bytesOut) => {
        const c = this.#counters;
        c.messagesIn += messages;
        c.bytesIn += bytesIn;
        c.repliesOut += replies;
        c.bytesOut += bytesOut;
        this.#checkReplyQueue();
      },
    };
  }

  /**
   * True when a region access that arrived now would be served at once,
   * as #onFrame and #run would serve it, untraced: bound, nothing running,
   * queued or unread beyond the reply queue, not frozen or ending, no trace
   * subscribed, the device set's lock free. What the transport answers
   * itself, and where a large write is received in place (#placeWrite).
   */
  #mayAnswer(): boolean {
    return (
      !this.#busy &&
      this.#queue.length === 0 &&
      !this.#repliesWaiting &&
      !this.#frozen &&
      !this.#closed &&
      !this.#endAfterReply &&
      this.#framingFailure === null &&
      !messageChannel.hasSubscribers &&
      this.file.accessRunsAtOnce
    );
  }

  reply(req: Request, message: Uint8Array, fds?: readonly number[]): void {
    if (wantsNoReply(req.flags)) return;
    this.#sendReply(message, fds);
  }

  replyParts(req: Request, head: Uint8Array, body: Uint8Array): void {
    if (wantsNoReply(req.flags)) return;
    this.#sendReply(head, undefined, body);
  }

  replyEmpty(req: Request): void {
    if (wantsNoReply(req.flags)) return;
    writeEmptyReply(this.#errBuf, req.msgId, req.cmd);
    this.#sendReply(this.#errBuf);
  }

  replyBuffer(size: number): Uint8Array {
    let buf: Uint8Array;
    if (size <= OWN_REPLY_MAX) {
      if (this.#ownReply.length < size) this.#ownReply = new Uint8Array(Math.min(OWN_REPLY_MAX, Math.max(size, this.#ownReply.length * 2)));
      buf = this.#ownReply;
    } else {
      if (this.#lentReply !== null && this.#lentReply.length < size) this.#giveBackReply();
      buf = this.#lentReply ??= replyBuffers.borrow(size);
    }
    if (buf !== this.#replyBuf) {
      this.#replyBuf = buf;
      this.#viewSize = this.#sliceStart = -1;
    }
    return buf;
  }

  replyView(size: number): Uint8Array {
    const buf = this.replyBuffer(size);
    if (size !== this.#viewSize) {
      this.#view = buf.subarray(0, size);
      this.#viewSize = size;
    }
    return this.#view;
  }

  replySlice(start: number, count: number): Uint8Array {
    const buf = this.replyBuffer(start + count);
    if (start !== this.#sliceStart || count !== this.#sliceCount) {
      this.#slice = buf.subarray(start, start + count);
      this.#sliceStart = start;
      this.#sliceCount = count;
    }
    return this.#slice;
  }

  /** The borrowed reply buffer goes back; the views of it with it. */
  #giveBackReply(): void {
    replyBuffers.give(this.#lentReply!);
    this.#lentReply = null;
    this.#replyBuf = this.#ownReply;
    this.#viewSize = this.#sliceStart = -1;
  }

  takeFds(req: Request): number[] {
    const fds = req.fds;
    req.fds = NO_FDS;
    return fds;
  }

  endAfterReply(): void {
    this.#transport.holdAnswers();
    this.#endAfterReply = true;
  }

  notice(msg: string, fields: Record<string, unknown> = {}): void {
    this.#log.info(msg, { device: this.file.device.name, client: this.id, pid: this.identity.pid, clientCommand: this.identity.command, ...fields });
  }

  // ---- receiving ------------------------------------------------------------

  #onBroken(failure: FramingError): void {
    if (this.#closed || this.#endAfterReply || this.#framingFailure !== null) return;
    this.#transport.holdAnswers();
    this.#framingFailure = failure;
    if (!this.#busy && this.#queue.length === 0 && !this.#frozen) this.#failFraming();
  }

  #onFrame(frame: Frame): void {
    this.#counters.messagesIn++;
    this.#counters.bytesIn += frame.size;
    if (this.#closed || this.#endAfterReply) {
      closeFds(frame.fds);
      return;
    }
    // Without a twin socket, the client's answers to DMA messages come here.
    if (this.#twin === null && this.dma !== null && this.dma.handleReply(frame)) {
      closeFds(frame.fds);
      this.#checkIdle();
      return;
    }
    if (this.#busy || this.#queue.length > 0 || this.#repliesWaiting || this.#frozen) {
      this.#enqueue(copyFrame(frame));
      return;
    }
    const req = this.#req;
    req.msgId = frame.msgId;
    req.cmd = frame.cmd;
    req.flags = frame.flags;
    req.body = frame.body;
    req.fds = frame.fds;
    req.placed = frame.placed ?? null;
    this.#run(req, true);
  }

  /**
   * Where a large REGION_WRITE's data may be received: straight into the
   * device's memory (VfioDevice.regionMemory), when the write would be
   * served at once and untraced (#mayAnswer: a trace keeps whole requests)
   * and passes every check its handler makes. Null otherwise: it then
   * arrives whole and is served as usual.
   */
  #placeWrite(header: MessageHeader, head: Uint8Array): Uint8Array | null {
    if (header.cmd !== Command.REGION_WRITE || this.negotiated === null || !this.#mayAnswer()) return null;
    try {
      checkCommand(header.msgId, header.cmd, header.flags, 'server');
      const a = decodeRegionWriteHead(head, header.size - HEADER_SIZE, this.decode, this.access);
      return this.file.regionMemory(a.region, a.offset, a.count, true);
    } catch {
      // Refused the ordinary way once it arrived.
      return null;
    }
  }

  #enqueue(frame: Frame): void {
    this.#transport.holdAnswers();
    this.#queue.push(frame);
    this.#queuedBytes += frame.size + QUEUED_OVERHEAD;
    this.#updateReading();
  }

  /**
   * Reads the client only while its queued commands are within
   * request-queue and its unread replies within reply-queue (its writes then
   * back up in its own socket). Not while DMA replies are awaited on the
   * main channel: the busy handler may be waiting for one; a client that
   * floods commands meanwhile is dropped at QUEUE_HARD_FACTOR times the limit.
   */
  #updateReading(): void {
    if (this.#closed || this.#endAfterReply) return;
    const over = this.#frozen || this.#repliesWaiting || this.#queuedBytes >= this.limits.requestQueueBytes;
    const dmaAwaited = this.#twin === null && this.dma !== null && this.dma.waiting > 0;
    if (dmaAwaited && this.#queuedBytes > QUEUE_HARD_FACTOR * this.limits.requestQueueBytes) {
      this.#log.warn('vfio-user client floods commands while its DMA replies are awaited: dropping it', {
        device: this.file.device.name,
        client: this.id,
        pid: this.identity.pid,
        limit: 'request-queue',
      });
      void this.close('it flooded commands while its DMA replies were awaited');
      return;
    }
    const pause = over && !dmaAwaited;
    if (pause === this.#paused) return;
    this.#paused = pause;
    if (pause) this.#transport.pause();
    else this.#transport.resume();
  }

  /** Every queued reply reached the client (or its kernel buffer): serve on. */
  #repliesLeft(): void {
    if (!this.#repliesWaiting) return;
    this.#repliesWaiting = false;
    this.#drain();
  }

  // ---- serving --------------------------------------------------------------

  /** Serves `req`; `received` when its body is a view of the bytes being received (not a queued copy). */
  #run(req: Request, received: boolean): void {
    if (messageChannel.hasSubscribers) this.#traceBegin(req);
    let result: void | Promise<void>;
    try {
      result = dispatch(this, req);
    } catch (err) {
      this.#failed(req, err);
      this.#finish(req);
      return;
    }
    if (result === undefined) {
      this.#finish(req);
      return;
    }
    // The handler may hold views of the received bytes until it settles.
    this.#transport.holdAnswers();
    this.#busy = true;
    if (received) this.#transport.hold();
    void result
      .then(
        () => this.#finish(req),
        (err: unknown) => {
          this.#failed(req, err);
          this.#finish(req);
        },
      )
      .then(() => {
        if (received) this.#transport.release();
        this.#busy = false;
        this.#drain();
      });
  }

  #failed(req: Request, err: unknown): void {
    const error = toVfioError(err);
    this.#counters.errors++;
    if (this.#trace !== null) this.#trace.errno = error.errno;
    if (this.#endAfterReply) this.#endReason ??= error.message;
    if (err instanceof OverBudget) this.#overLimit(req, err);
    else if (!(err instanceof VfioError)) {
      this.#log.warn('vfio-user command failed unexpectedly', {
        device: this.file.device.name,
        command: commandName(req.cmd),
        error: error.message,
      });
    }
    if (wantsNoReply(req.flags)) return;
    writeErrorReply(this.#errBuf, req.msgId, req.cmd, error.errno);
    this.#sendReply(this.#errBuf);
  }

  /** Logs a request refused by a limit, naming the client; at most once per interval. */
  #overLimit(req: Request, err: OverBudget): void {
    const now = Date.now();
    if (now - this.#limitLoggedAt < LIMIT_LOG_INTERVAL_MS) {
      this.#limitLogsHeld++;
      return;
    }
    this.#log.warn('vfio-user client refused: over a limit', {
      device: this.file.device.name,
      client: this.id,
      pid: this.identity.pid,
      clientCommand: this.identity.command,
      command: commandName(req.cmd),
      limit: err.limit,
      error: err.message,
      ...(this.#limitLogsHeld > 0 ? { alsoRefused: this.#limitLogsHeld } : {}),
    });
    this.#limitLoggedAt = now;
    this.#limitLogsHeld = 0;
  }

  #finish(req: Request): void {
    if (this.#trace !== null) this.#tracePublish();
    if (req.fds.length > 0) {
      closeFds(req.fds);
      req.fds = NO_FDS;
    }
    req.body = EMPTY;
    req.placed = null;
    // The reply left (or its unsent tail was copied): the buffer can go.
    if (this.#lentReply !== null) this.#giveBackReply();
    if (this.#endAfterReply && !this.#closed) this.#end();
  }

  #drain(): void {
    while (!this.#busy && !this.#repliesWaiting && this.#queue.length > 0 && !this.#closed && !this.#endAfterReply && !this.#frozen) {
      const frame = this.#queue.shift()!;
      this.#queuedBytes -= frame.size + QUEUED_OVERHEAD;
      this.#run(frame, false);
    }
    this.#checkIdle();
    if (this.#closed || this.#endAfterReply || this.#busy) return;
    this.#updateReading();
    if (this.#framingFailure !== null && this.#queue.length === 0 && !this.#repliesWaiting && !this.#frozen) this.#failFraming();
  }

  /** The stream broke (msg_size below 16 or over the limit): answer that message, then end. */
  #failFraming(): void {
    const { error, header } = this.#framingFailure!;
    this.#log.info('vfio-user stream broken: ending the session', { device: this.file.device.name, client: this.id, error: error.message });
    this.#endReason ??= `the stream broke: ${error.message}`;
    this.#counters.errors++;
    if (!wantsNoReply(header.flags) && isCommand(header.flags)) {
      writeErrorReply(this.#errBuf, header.msgId, header.cmd, error.errno);
      this.#sendReply(this.#errBuf);
    }
    this.#end();
  }

  /** Stops serving; the transport closes once queued replies are out. */
  #end(): void {
    this.#transport.holdAnswers();
    this.#endAfterReply = true;
    for (const f of this.#queue) closeFds(f.fds);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#transport.end();
  }

  // ---- twin socket ----------------------------------------------------------

  /** Opens the twin channel; keeps one end, and the fd of the client's for establish(). */
  #openTwin(): void {
    const made = this.#transport.openTwin();
    if (made === null) throw new VfioError('EOPNOTSUPP', 'this transport cannot make a twin socket');
    this.#useTwin(made.twin);
    this.#twinPeerFd = made.peerFd;
  }

  /** Makes `twin` the channel of the server's DMA messages and their replies. */
  #useTwin(twin: Transport): void {
    twin.onMessage = (frame) => {
      this.#counters.messagesIn++;
      this.#counters.bytesIn += frame.size;
      // Only replies to the server's DMA messages belong here.
      if (this.dma !== null && this.dma.handleReply(frame)) {
        this.#checkIdle();
      } else {
        this.#log.info('vfio-user: ignoring a stray message on the twin socket', {
          device: this.file.device.name,
          client: this.id,
          command: commandName(frame.cmd),
        });
      }
      closeFds(frame.fds);
    };
    twin.onBroken = (failure) => void this.#teardown(failure.error);
    // The client hung up its half: it can no longer serve DMA. End it all.
    twin.onClose = (err) => void this.#teardown(err);
    this.#twin = twin;
  }

  // ---- teardown -------------------------------------------------------------

  #teardown(err?: VfioError): Promise<void> {
    if (!this.#closed) {
      if (err !== undefined) this.#endReason ??= err.message;
      this.#closed = true;
      this.#closing = this.#release(err);
      this.#checkIdle();
    }
    // #closing is set as soon as #release returned its promise; a socket
    // closing re-entrantly during #release's first steps gets the resolved
    // one below, which is fine: it only needs to know teardown began.
    return this.#closing ?? Promise.resolve();
  }

  async #release(err: VfioError | undefined): Promise<void> {
    const device = this.file.device.name;
    if (err !== undefined && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
      this.#log.info('vfio-user client connection failed', { device, error: err.message });
    }
    if (this.#versionTimer !== null) clearTimeout(this.#versionTimer);
    this.#versionTimer = null;
    this.#transport.destroy();
    this.#twin?.destroy();
    for (const f of this.#queue) closeFds(f.fds);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.dma?.abort(new VfioError('ENOTCONN', 'the client disconnected'));
    try {
      await this.file.close();
    } catch (e) {
      this.#log.warn('vfio-user: closing the device file failed', { device, error: toVfioError(e).message });
    }
    this.iommufd?.destroy();
    this.notifiers.closeAll();
    await this.#commandRead;
    if (sessionChannel.hasSubscribers) {
      sessionChannel.publish({ event: 'closed', device, client: this.id, reason: this.#endReason ?? 'the client hung up' });
    }
    this.#onClosed(this);
  }

  // ---- counting and tracing -------------------------------------------------

  /** Every reply leaves here (`body` after `message`, when given): counted, and copied for the trace when one is being made. */
  #sendReply(message: Uint8Array, fds?: readonly number[], body?: Uint8Array): void {
    this.#counters.repliesOut++;
    this.#counters.bytesOut += message.length + (body?.length ?? 0);
    const trace = this.#trace;
    if (trace !== null) {
      const payload = message.subarray(HEADER_SIZE);
      trace.reply = body === undefined ? payload.slice() : concat(payload, body);
      if (hasErrorFlag(u32(message, 8))) trace.errno = u32(message, 12);
    }
    if (body === undefined) this.#transport.send(message, fds);
    else this.#transport.send2(message, body, fds);
    this.#checkReplyQueue();
  }

  /** Stops reading a client whose unread replies went over reply-queue. */
  #checkReplyQueue(): void {
    if (!this.#repliesWaiting && this.#transport.pendingBytes > this.limits.replyQueueBytes) {
      this.#transport.holdAnswers();
      this.#repliesWaiting = true;
      this.#updateReading();
    }
  }

  #traceBegin(req: Request): void {
    this.#traceStart = hrtime.bigint();
    this.#trace = {
      device: this.file.device.name,
      client: this.id,
      msgId: req.msgId,
      cmd: req.cmd,
      flags: req.flags,
      request: req.body.slice(),
      fds: req.fds.length,
      errno: 0,
      reply: null,
      latencyNs: 0,
      posted: wantsNoReply(req.flags),
    };
  }

  #tracePublish(): void {
    const trace = this.#trace!;
    this.#trace = null;
    trace.latencyNs = Number(hrtime.bigint() - this.#traceStart);
    if (messageChannel.hasSubscribers) messageChannel.publish(trace);
    if (this.#traceAfter.length === 0) return;
    for (const publish of this.#traceAfter.splice(0)) publish();
  }

  #signalled(index: number, vector: number): void {
    this.#counters.interrupts++;
    if (!interruptChannel.hasSubscribers) return;
    const event = { device: this.file.device.name, client: this.id, index, vector };
    // Raised by the command being traced: published after it, cause before effect.
    if (this.#trace !== null) this.#traceAfter.push(() => interruptChannel.publish(event));
    else interruptChannel.publish(event);
  }
}

/** `a` then `b` in one new buffer. */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** `p`, or nothing after `ms`: whichever comes first. Never rejects. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([p.catch(() => {}), late]).finally(() => clearTimeout(timer));
}

/** A SocketState's fds, taken: the TransportHandover to adopt. */
export function adoptedSocket(state: SocketState, take: (index: number) => number): TransportHandover {
  return {
    fd: take(state.fd),
    inbound: { bytes: state.inbound.bytes, fds: state.inbound.fds.map(take) },
    unsent: state.unsent.map((u) => ({ data: u.data, fds: u.fds.map(take) })),
  };
}
