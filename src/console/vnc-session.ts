/**
 * One VNC viewer of one display device: the RFB handshake (version,
 * security None, ClientInit, ServerInit), then framebuffer updates as the
 * viewer asks for them. Read-only: key and pointer events are read and
 * dropped, clipboard text is skipped without being kept.
 *
 * Updates are pulled (RFB's own flow control): a viewer gets the tiles that
 * changed since its last update, as Raw rectangles in the pixel format it
 * asked for, only once it has asked and only while its socket has room; a
 * slow or silent viewer costs a flag per tile. A mode change reaches a
 * viewer that understands DesktopSize as a new size; one that does not is
 * disconnected (its window cannot change size), as is one that breaks the
 * protocol.
 */
import type { Socket } from 'node:net';
import { VfioError, toVfioError } from '../base/errors.js';
import type { ConsoleLog } from './console-log.js';
import { CONSOLE_LIMITS } from './limits.js';
import { PixelConverter, XRGB8888_FORMAT } from './pixel-format.js';
import {
  CLIENT_MESSAGE_SIZE,
  ClientMessage,
  Encoding,
  FRAMEBUFFER_UPDATE,
  MAX_RFB_DIMENSION,
  RECT_HEADER_SIZE,
  RFB_VERSION_3_8,
  SECURITY_NONE,
  SECURITY_RESULT_FAILED,
  SECURITY_RESULT_OK,
  UPDATE_HEADER_SIZE,
  VERSION_LENGTH,
  decodePixelFormat,
  encodeReason,
  encodeServerInit,
  parseClientVersion,
  writeRectHeader,
  type RfbMinor,
} from './rfb.js';
import type { Frame, ScreenFeed } from './screen-feed.js';
import { TileViewer } from './tile-viewer.js';
import type { TileGrid } from './tiles.js';

type Phase = 'version' | 'security' | 'init' | 'ready' | 'closed';

export interface VncSessionOptions {
  socket: Socket;
  feed: ScreenFeed;
  /** The desktop name viewers show in their title. */
  name: string;
  log: ConsoleLog;
  /** When set, the viewer is refused with this reason after the version exchange. */
  refuse?: string;
  /** Called once, when the session is over. */
  onClose?: () => void;
  /** Default CONSOLE_LIMITS.vncHandshakeTimeoutMs. */
  handshakeTimeoutMs?: number;
}

export class VncSession extends TileViewer {
  private phase: Phase = 'version';
  private minor: RfbMinor = 8;
  private input: Buffer = Buffer.alloc(0);
  /** Clipboard bytes still to be skipped. */
  private skip = 0;
  private converter = new PixelConverter(XRGB8888_FORMAT);
  private desktopSize = false;
  private resized = false;
  private requested = false;
  private unwatch: (() => void) | undefined;
  private readonly handshakeTimer: NodeJS.Timeout;
  private readonly socket: Socket;

  constructor(private readonly options: VncSessionOptions) {
    super();
    this.socket = options.socket;
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('drain', () => this.flush());
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    this.handshakeTimer = setTimeout(
      () => this.fail('the handshake took too long'),
      options.handshakeTimeoutMs ?? CONSOLE_LIMITS.vncHandshakeTimeoutMs,
    );
    this.socket.write(RFB_VERSION_3_8);
  }

  // ---- ScreenViewer ----------------------------------------------------------

  protected newFrame(frame: Frame, last: Frame | undefined): boolean {
    if (this.phase === 'ready' && last !== undefined && (last.width !== frame.width || last.height !== frame.height)) {
      if (!this.desktopSize) {
        this.fail(`the screen changed to ${frame.width}x${frame.height} and this viewer cannot resize (no DesktopSize)`);
        return false;
      }
      this.resized = true;
    }
    return true;
  }

  ended(): void {
    this.unwatch = undefined;
    this.close();
  }

  // ---- input -------------------------------------------------------------------

  private receive(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      chunk = chunk.subarray(n);
    }
    this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    try {
      let used: number;
      while (!this.isClosed() && (used = this.step(this.input)) > 0) {
        this.input = this.input.subarray(used);
        if (this.skip > 0) {
          const n = Math.min(this.skip, this.input.length);
          this.skip -= n;
          this.input = this.input.subarray(n);
        }
      }
    } catch (err) {
      this.fail(toVfioError(err).message);
    }
    // What stays is at most one message short of complete (bounded by SetEncodings' 65535 entries).
    if (this.input.length > 0) this.input = Buffer.from(this.input);
  }

  /** Handles one complete message at the start of `b`; returns its length, 0 when more bytes are needed. */
  private step(b: Buffer): number {
    switch (this.phase) {
      case 'version':
        return b.length < VERSION_LENGTH ? 0 : this.onVersion(b.subarray(0, VERSION_LENGTH));
      case 'security':
        return b.length < 1 ? 0 : this.onSecurity(b[0]!);
      case 'init':
        return b.length < 1 ? 0 : this.onClientInit();
      case 'ready':
        return this.onMessage(b);
      case 'closed':
        return 0;
    }
  }

  private onVersion(bytes: Buffer): number {
    this.minor = parseClientVersion(bytes);
    const refuse = this.options.refuse;
    if (this.minor === 3) {
      // 3.3: the server picks the type; 0 means failure, then the reason.
      if (refuse !== undefined) return this.refuse(Buffer.concat([u32(0), encodeReason(refuse)]), refuse);
      this.socket.write(u32(SECURITY_NONE));
      this.phase = 'init';
    } else {
      if (refuse !== undefined) return this.refuse(Buffer.concat([Buffer.of(0), encodeReason(refuse)]), refuse);
      this.socket.write(Buffer.of(1, SECURITY_NONE));
      this.phase = 'security';
    }
    return VERSION_LENGTH;
  }

  private onSecurity(type: number): number {
    if (type !== SECURITY_NONE) {
      const reason = `security type ${type} is not offered: only None (1)`;
      if (this.minor === 8) return this.refuse(Buffer.concat([u32(SECURITY_RESULT_FAILED), encodeReason(reason)]), reason);
      throw new VfioError('EPROTO', reason);
    }
    if (this.minor === 8) this.socket.write(u32(SECURITY_RESULT_OK));
    this.phase = 'init';
    return 1;
  }

  private onClientInit(): number {
    clearTimeout(this.handshakeTimer);
    // The shared flag is moot: every viewer shares, and nobody is ever disconnected for another.
    this.unwatch = this.options.feed.watch(this);
    if (this.isClosed()) return 1;
    const frame = this.frame!;
    if (frame.width > MAX_RFB_DIMENSION || frame.height > MAX_RFB_DIMENSION) {
      throw new VfioError('EOVERFLOW', `a ${frame.width}x${frame.height} screen does not fit RFB's 16-bit sizes`);
    }
    this.socket.write(encodeServerInit(frame.width, frame.height, XRGB8888_FORMAT, this.options.name));
    this.phase = 'ready';
    this.options.log.debug('vnc viewer connected', { remote: `${this.socket.remoteAddress}:${this.socket.remotePort}`, minor: this.minor });
    return 1;
  }

  private onMessage(b: Buffer): number {
    if (b.length === 0) return 0;
    const type = b[0]!;
    const size = CLIENT_MESSAGE_SIZE[type];
    if (size === undefined) throw new VfioError('EPROTO', `unknown client message type ${type}`);
    if (b.length < size) return 0;
    switch (type) {
      case ClientMessage.SET_PIXEL_FORMAT: {
        this.converter = new PixelConverter(decodePixelFormat(b, 4));
        this.damage?.markAll();
        return size;
      }
      case ClientMessage.SET_ENCODINGS: {
        const count = b.readUInt16BE(2);
        const total = size + 4 * count;
        if (b.length < total) return 0;
        this.desktopSize = false;
        for (let i = 0; i < count; i++) if (b.readInt32BE(size + 4 * i) === Encoding.DESKTOP_SIZE) this.desktopSize = true;
        return total;
      }
      case ClientMessage.FRAMEBUFFER_UPDATE_REQUEST: {
        const incremental = b[1] !== 0;
        if (!incremental) {
          this.damage?.addRect({ x: b.readUInt16BE(2), y: b.readUInt16BE(4), w: b.readUInt16BE(6), h: b.readUInt16BE(8) });
        }
        this.requested = true;
        this.flush();
        return size;
      }
      case ClientMessage.CLIENT_CUT_TEXT:
        // Skipped as it streams by, however long.
        this.skip = b.readUInt32BE(4);
        return size;
      default:
        return size; // key and pointer events: read-only
    }
  }

  // ---- output ------------------------------------------------------------------

  /** Sends what is pending if the viewer asked and its socket has room. */
  protected flush(): void {
    if (this.phase !== 'ready' || !this.requested || this.frame === undefined || this.damage === undefined) return;
    if (this.socket.writableLength > CONSOLE_LIMITS.maxVncBufferedBytes) return;
    if (!this.resized && this.damage.empty) return;
    this.requested = false;
    this.socket.write(this.encodeUpdate(this.frame, this.frame.grid, this.damage.take()));
  }

  private encodeUpdate(frame: Frame, grid: TileGrid, tiles: number[]): Buffer {
    const rects = tiles.map((i) => grid.rect(i));
    const resize = this.resized;
    this.resized = false;
    const count = rects.length + (resize ? 1 : 0);
    let size = UPDATE_HEADER_SIZE + count * RECT_HEADER_SIZE;
    for (const r of rects) size += this.converter.sizeOf(r);
    const out = Buffer.allocUnsafe(size);
    out[0] = FRAMEBUFFER_UPDATE;
    out[1] = 0;
    out.writeUInt16BE(count, 2);
    let at = UPDATE_HEADER_SIZE;
    if (resize) at = writeRectHeader(out, at, 0, 0, frame.width, frame.height, Encoding.DESKTOP_SIZE);
    for (const r of rects) {
      at = writeRectHeader(out, at, r.x, r.y, r.w, r.h, Encoding.RAW);
      at = this.converter.convert(frame, r, out, at);
    }
    return out;
  }

  // ---- the end -----------------------------------------------------------------

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private refuse(message: Buffer, reason: string): number {
    this.options.log.info('vnc viewer refused', { reason });
    this.socket.end(message);
    this.close();
    return 0;
  }

  private fail(reason: string): void {
    if (this.phase === 'closed') return;
    this.options.log.info('vnc viewer disconnected', { reason });
    this.socket.destroy();
    this.close();
  }

  private close(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.handshakeTimer);
    this.unwatch?.();
    this.unwatch = undefined;
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.destroy();
    this.options.onClose?.();
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v, 0);
  return b;
}
