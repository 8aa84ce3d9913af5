/**
 * What a command handler is given: the request being served and the session
 * (one client's connection) it belongs to. Every handler has the same
 * signature; handlers/index.ts maps command ids to them.
 *
 * A handler decodes the body, runs the op on the device file, and replies
 * through the session. It returns nothing when it finished synchronously
 * (the hot path), or a promise; the connection processes the next command
 * only once it settles, so requests are served strictly in order. A throw
 * or rejection becomes an error reply with the error's errno. Fds the
 * handler does not take with `session.takeFds` are closed after it.
 */
import type { DeviceFile } from '../../core/device-file.js';
import type { IommufdContext } from '../../iommufd/context.js';
import type { DecodeContext } from '../context.js';
import type { DmaChannel } from '../dma-channel.js';
import type { SessionDeviceShape } from '../device-shape.js';
import type { IrqNotifiers } from '../irq-notifiers.js';
import type { RegionAccess } from '../messages.js';
import type { ClientBudgets } from '../limits.js';
import type { Negotiated, ServerLimits } from '../negotiation.js';

/** One command as a handler sees it. */
export interface Request {
  msgId: number;
  cmd: number;
  flags: number;
  /** the bytes after the header; valid until the handler is done with them */
  body: Uint8Array;
  /** fds that came with the command; see Session.takeFds */
  fds: number[];
  /**
   * A REGION_WRITE's data already received into the device's memory (the
   * session placed it, having checked the write): `body` then holds only
   * the access struct.
   */
  placed?: Uint8Array | null;
}

/** The state a handler works with: its client's session. */
export interface Session {
  /** What the server accepts and how it talks to clients. */
  readonly limits: ServerLimits;
  /** The client's open file on the device. */
  readonly file: DeviceFile;
  /** The client's DMA address space; null until VERSION has bound the file. */
  readonly iommufd: IommufdContext | null;
  /** What was negotiated; null until VERSION succeeded. */
  readonly negotiated: Negotiated | null;
  /** The device as seen at bind; null before. */
  readonly shape: SessionDeviceShape | null;
  /** Limits and device shape for the decoders. */
  readonly decode: DecodeContext;
  /** Server-to-client DMA messages; null before VERSION. */
  readonly dma: DmaChannel | null;
  /** Interrupt eventfds handed to the device. */
  readonly notifiers: IrqNotifiers;
  /** What the client may make the server hold (its shares of the daemon's budgets). */
  readonly budgets: ClientBudgets;
  /** Reused by the region access handlers: decoding allocates nothing. */
  readonly access: RegionAccess;

  /**
   * Runs the handshake's side effects: binds the file (open_device runs
   * if it is the first), reads the device's shape, creates the twin socket.
   * Returns the client's end of the twin socket (the caller sends it and
   * closes it) or null.
   */
  establish(negotiated: Negotiated): Promise<number | null>;

  /** Sends `message` as the reply to `req` (unless it asked for none), with `fds` that stay the caller's. */
  reply(req: Request, message: Uint8Array, fds?: readonly number[]): void;
  /**
   * Sends `head` then `body` as the reply to `req` (unless it asked for
   * none), without joining them: a large read straight from device memory.
   */
  replyParts(req: Request, head: Uint8Array, body: Uint8Array): void;
  /** A header-only success reply. */
  replyEmpty(req: Request): void;
  /**
   * A buffer of at least `size` bytes, reused for every reply: fill it and
   * pass `replyView(size)` to reply() before anything else replies.
   */
  replyBuffer(size: number): Uint8Array;
  /** replyBuffer's first `size` bytes (cached for a repeated size). */
  replyView(size: number): Uint8Array;
  /** replyBuffer's bytes [start, start+count) (cached for a repeated range). */
  replySlice(start: number, count: number): Uint8Array;
  /** The fds of `req`, now the caller's to keep or close. */
  takeFds(req: Request): number[];
  /** Ends the session once the reply to the current request is out (VERSION failures). */
  endAfterReply(): void;
  /** Logs (info) something about this client worth an operator's eye, naming the device and the client. */
  notice(msg: string, fields?: Record<string, unknown>): void;
}

/** A command handler (one per file in this folder). */
export type CommandHandler = (session: Session, req: Request) => void | Promise<void>;

/** `then` that stays synchronous for a plain value (the core's, for every handler). */
export { after } from '../../core/maybe-async.js';
