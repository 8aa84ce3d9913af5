/**
 * The parts of RFB (the Remote Framebuffer protocol, RFC 6143) a read-only
 * VNC server needs: the handshake's words, the client messages' sizes, and
 * the server messages, encoded. Versions 3.3, 3.7 and 3.8 are spoken; the
 * only security type is None; the only pixel encoding is Raw, plus the
 * DesktopSize pseudo-encoding that tells a viewer of a mode change.
 */
import { VfioError } from '../base/errors.js';
import type { PixelFormat } from './pixel-format.js';

/** What the server says first. */
export const RFB_VERSION_3_8 = 'RFB 003.008\n';
export const VERSION_LENGTH = 12;

/** The protocol minor versions spoken (3.x). */
export type RfbMinor = 3 | 7 | 8;

export const SECURITY_NONE = 1;
export const SECURITY_RESULT_OK = 0;
export const SECURITY_RESULT_FAILED = 1;

/** Client-to-server message types (RFC 6143 7.5). */
export const ClientMessage = {
  SET_PIXEL_FORMAT: 0,
  SET_ENCODINGS: 2,
  FRAMEBUFFER_UPDATE_REQUEST: 3,
  KEY_EVENT: 4,
  POINTER_EVENT: 5,
  CLIENT_CUT_TEXT: 6,
} as const;

/** Fixed sizes of the client messages, type byte included (SetEncodings and ClientCutText grow). */
export const CLIENT_MESSAGE_SIZE: Readonly<Record<number, number>> = {
  [ClientMessage.SET_PIXEL_FORMAT]: 20,
  [ClientMessage.SET_ENCODINGS]: 4,
  [ClientMessage.FRAMEBUFFER_UPDATE_REQUEST]: 10,
  [ClientMessage.KEY_EVENT]: 8,
  [ClientMessage.POINTER_EVENT]: 6,
  [ClientMessage.CLIENT_CUT_TEXT]: 8,
};

export const Encoding = {
  RAW: 0,
  /** Pseudo-encoding: the framebuffer's new size, in the rectangle's width and height. */
  DESKTOP_SIZE: -223,
} as const;

/** Server-to-client message type of a framebuffer update. */
export const FRAMEBUFFER_UPDATE = 0;
/** Bytes of a FramebufferUpdate header and of each rectangle header. */
export const UPDATE_HEADER_SIZE = 4;
export const RECT_HEADER_SIZE = 12;
/** RFB sizes are 16-bit: a larger frame cannot be described. */
export const MAX_RFB_DIMENSION = 0xffff;

/**
 * The client's ProtocolVersion: 3.3, 3.7 or 3.8 (a later 3.x is spoken as
 * 3.8; 3.4 to 3.6 as 3.3, as the RFC asks). EPROTO for anything else.
 */
export function parseClientVersion(bytes: Buffer): RfbMinor {
  const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(bytes.toString('latin1'));
  if (!m || Number(m[1]) !== 3 || Number(m[2]) < 3) {
    throw new VfioError('EPROTO', `not an RFB 3.x client (${JSON.stringify(bytes.toString('latin1'))})`);
  }
  const minor = Number(m[2]);
  return minor >= 8 ? 8 : minor === 7 ? 7 : 3;
}

/** PIXEL_FORMAT's 16 bytes. */
export function encodePixelFormat(pf: PixelFormat): Buffer {
  const b = Buffer.alloc(16);
  b[0] = pf.bitsPerPixel;
  b[1] = pf.depth;
  b[2] = pf.bigEndian ? 1 : 0;
  b[3] = 1; // true colour
  b.writeUInt16BE(pf.redMax, 4);
  b.writeUInt16BE(pf.greenMax, 6);
  b.writeUInt16BE(pf.blueMax, 8);
  b[10] = pf.redShift;
  b[11] = pf.greenShift;
  b[12] = pf.blueShift;
  return b;
}

/** A PIXEL_FORMAT a client sent; EOPNOTSUPP for a colour-map format. */
export function decodePixelFormat(b: Buffer, at: number): PixelFormat {
  if (b[at + 3] === 0) throw new VfioError('EOPNOTSUPP', 'colour-map pixel formats are not supported: ask for true colour');
  return {
    bitsPerPixel: b[at]! as PixelFormat['bitsPerPixel'],
    depth: b[at + 1]!,
    bigEndian: b[at + 2] !== 0,
    redMax: b.readUInt16BE(at + 4),
    greenMax: b.readUInt16BE(at + 6),
    blueMax: b.readUInt16BE(at + 8),
    redShift: b[at + 10]!,
    greenShift: b[at + 11]!,
    blueShift: b[at + 12]!,
  };
}

/** ServerInit: the framebuffer's size, its pixel format and the desktop's name. */
export function encodeServerInit(width: number, height: number, pf: PixelFormat, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(24 + nameBytes.length);
  b.writeUInt16BE(width, 0);
  b.writeUInt16BE(height, 2);
  encodePixelFormat(pf).copy(b, 4);
  b.writeUInt32BE(nameBytes.length, 20);
  nameBytes.copy(b, 24);
  return b;
}

/** The security handshake's failure: a reason string after the count or result that says it failed. */
export function encodeReason(reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const b = Buffer.alloc(4 + text.length);
  b.writeUInt32BE(text.length, 0);
  text.copy(b, 4);
  return b;
}

/** Writes a rectangle header at `at`; returns the offset after it. */
export function writeRectHeader(out: Buffer, at: number, x: number, y: number, w: number, h: number, encoding: number): number {
  out.writeUInt16BE(x, at);
  out.writeUInt16BE(y, at + 2);
  out.writeUInt16BE(w, at + 4);
  out.writeUInt16BE(h, at + 6);
  out.writeInt32BE(encoding, at + 8);
  return at + RECT_HEADER_SIZE;
}
