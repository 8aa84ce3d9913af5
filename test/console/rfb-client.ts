/**
 * A small RFB client for the tests, written from RFC 6143, that speaks the
 * bytes itself so a test can say exactly what a viewer sends, and checks
 * what comes back. Every read has a deadline.
 */
import { connect, type Socket } from 'node:net';
import type { PixelFormat } from '../../src/console/pixel-format.js';

export interface ServerInit {
  width: number;
  height: number;
  format: PixelFormat & { trueColour: boolean };
  name: string;
}

export interface UpdateRect {
  x: number;
  y: number;
  w: number;
  h: number;
  encoding: number;
  /** Raw pixel bytes (empty for a pseudo-encoding). */
  data: Buffer;
}

export class RfbClient {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  ended = false;
  /** Bytes received in all. */
  received = 0;
  /** Bytes per pixel of updates (set by setPixelFormat; 4 at first). */
  bpp = 4;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiter?.();
    });
    const end = () => {
      this.ended = true;
      this.waiter?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Connects to `HOST:PORT`. */
  static open(address: string): Promise<RfbClient> {
    const i = address.lastIndexOf(':');
    const socket = connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new RfbClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Resolves with the next `n` bytes; rejects when the server closed first or after `ms`. */
  async read(n: number, ms = 5000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`the server closed the connection (${this.buffered.length} of ${n} bytes read)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out reading ${n} bytes (have ${this.buffered.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Resolves once the server has closed the connection (rejects after `ms`). */
  async closedByServer(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the server kept the connection open');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  write(bytes: Buffer | Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Version, security None, ClientInit; returns ServerInit. */
  async handshake(minor: 3 | 7 | 8 = 8): Promise<ServerInit> {
    const version = (await this.read(12)).toString('latin1');
    if (version !== 'RFB 003.008\n') throw new Error(`server version ${JSON.stringify(version)}`);
    this.write(`RFB 003.00${minor}\n`);
    if (minor === 3) {
      const type = (await this.read(4)).readUInt32BE(0);
      if (type !== 1) throw new Error(`security type ${type}`);
    } else {
      const count = (await this.read(1))[0]!;
      const types = [...(await this.read(count))];
      if (!types.includes(1)) throw new Error(`security types ${types.join(',')}`);
      this.write(Buffer.of(1));
      if (minor === 8) {
        const result = (await this.read(4)).readUInt32BE(0);
        if (result !== 0) throw new Error(`security result ${result}`);
      }
    }
    this.write(Buffer.of(1)); // shared
    const head = await this.read(24);
    const name = (await this.read(head.readUInt32BE(20))).toString('utf8');
    return {
      width: head.readUInt16BE(0),
      height: head.readUInt16BE(2),
      format: {
        bitsPerPixel: head[4]! as 8 | 16 | 32,
        depth: head[5]!,
        bigEndian: head[6] !== 0,
        trueColour: head[7] !== 0,
        redMax: head.readUInt16BE(8),
        greenMax: head.readUInt16BE(10),
        blueMax: head.readUInt16BE(12),
        redShift: head[14]!,
        greenShift: head[15]!,
        blueShift: head[16]!,
      },
      name,
    };
  }

  setPixelFormat(pf: PixelFormat, trueColour = true): void {
    const b = Buffer.alloc(20);
    b[0] = 0;
    b[4] = pf.bitsPerPixel;
    b[5] = pf.depth;
    b[6] = pf.bigEndian ? 1 : 0;
    b[7] = trueColour ? 1 : 0;
    b.writeUInt16BE(pf.redMax, 8);
    b.writeUInt16BE(pf.greenMax, 10);
    b.writeUInt16BE(pf.blueMax, 12);
    b[14] = pf.redShift;
    b[15] = pf.greenShift;
    b[16] = pf.blueShift;
    this.write(b);
    this.bpp = pf.bitsPerPixel / 8;
  }

  setEncodings(encodings: number[]): void {
    const b = Buffer.alloc(4 + 4 * encodings.length);
    b[0] = 2;
    b.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
    this.write(b);
  }

  requestUpdate(incremental: boolean, x = 0, y = 0, w = 0xffff, h = 0xffff): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.write(b);
  }

  /** Reads one FramebufferUpdate (Raw and DesktopSize rectangles). */
  async readUpdate(ms = 5000): Promise<UpdateRect[]> {
    const head = await this.read(4, ms);
    if (head[0] !== 0) throw new Error(`server message type ${head[0]}, not FramebufferUpdate`);
    const rects: UpdateRect[] = [];
    for (let i = head.readUInt16BE(2); i > 0; i--) {
      const r = await this.read(12, ms);
      const rect = { x: r.readUInt16BE(0), y: r.readUInt16BE(2), w: r.readUInt16BE(4), h: r.readUInt16BE(6), encoding: r.readInt32BE(8) };
      if (rect.encoding === 0) rects.push({ ...rect, data: Buffer.from(await this.read(rect.w * rect.h * this.bpp, ms)) });
      else if (rect.encoding === -223) rects.push({ ...rect, data: Buffer.alloc(0) });
      else throw new Error(`unexpected encoding ${rect.encoding}`);
    }
    return rects;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A client-side copy of the framebuffer in XRGB8888 byte order, updated from Raw rectangles. */
export class ClientScreen {
  pixels: Buffer;
  constructor(
    public width: number,
    public height: number,
  ) {
    this.pixels = Buffer.alloc(width * height * 4);
  }

  apply(rects: UpdateRect[]): void {
    for (const r of rects) {
      if (r.encoding === -223) {
        this.width = r.w;
        this.height = r.h;
        this.pixels = Buffer.alloc(r.w * r.h * 4);
        continue;
      }
      for (let y = 0; y < r.h; y++) r.data.copy(this.pixels, ((r.y + y) * this.width + r.x) * 4, y * r.w * 4, (y + 1) * r.w * 4);
    }
  }

  /** [r, g, b] at (x, y). */
  at(x: number, y: number): number[] {
    const i = (y * this.width + x) * 4;
    return [this.pixels[i + 2]!, this.pixels[i + 1]!, this.pixels[i]!];
  }
}
