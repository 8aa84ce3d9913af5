/**
 * A console page's connection without a browser, for protocol tests: the
 * `ws` client, JSON messages queued as they come, tile batches applied to
 * a copy of each watched screen. Every wait has a deadline.
 */
import WebSocket from 'ws';

export interface PageMessage {
  t: string;
  [field: string]: unknown;
}

/** What a page shows of one screen: RGBA pixels. */
export class PageCanvas {
  rgba: Buffer;
  tiles = 0;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = Buffer.alloc(width * height * 4);
  }
  /** [r, g, b, a] at (x, y). */
  at(x: number, y: number): number[] {
    const i = (y * this.width + x) * 4;
    return [...this.rgba.subarray(i, i + 4)];
  }
}

export class PageClient {
  readonly messages: PageMessage[] = [];
  /** slot → canvas of the frame announced last. */
  readonly canvases = new Map<number, PageCanvas>();
  readonly slots = new Map<string, number>();
  closeCode: number | undefined;
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as PageMessage;
        if (msg.t === 'frame') {
          this.canvases.set(msg.slot as number, new PageCanvas(msg.width as number, msg.height as number));
          this.slots.set(msg.uuid as string, msg.slot as number);
        }
        this.messages.push(msg);
        return;
      }
      this.applyTiles(data);
    });
    ws.on('close', (code) => (this.closeCode = code));
  }

  /** Opens `url` (ws://…/ws) with `headers`; rejects with the HTTP status of a refusal. */
  static open(url: string, headers: Record<string, string> = {}, autoPong = true): Promise<PageClient> {
    const ws = new WebSocket(url, { headers, perMessageDeflate: true, autoPong });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new PageClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Waits for the first message (not yet taken) that `match` accepts, and takes it. */
  async next(match: (m: PageMessage) => boolean, ms = 5000): Promise<PageMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.messages.findIndex(match);
      if (i !== -1) return this.messages.splice(i, 1)[0]!;
      if (this.closeCode !== undefined) throw new Error(`the console closed the page (${this.closeCode})`);
      if (Date.now() > deadline) throw new Error(`no matching message within ${ms} ms; have ${JSON.stringify(this.messages.map((m) => m.t))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Runs a service request from the page; resolves with the reply. */
  async op(op: string, args: unknown): Promise<PageMessage> {
    const id = this.nextId++;
    this.send({ t: 'op', id, op, args });
    return this.next((m) => m.t === 'reply' && m.id === id, 15_000);
  }

  close(): void {
    this.ws.terminate();
  }

  private applyTiles(data: Buffer): void {
    if (data[0] !== 1) throw new Error(`unknown binary message kind ${data[0]}`);
    const canvas = this.canvases.get(data.readUInt16LE(2));
    let at = 8;
    for (let n = data.readUInt32LE(4); n > 0; n--) {
      const x = data.readUInt16LE(at);
      const y = data.readUInt16LE(at + 2);
      const w = data.readUInt16LE(at + 4);
      const h = data.readUInt16LE(at + 6);
      at += 8;
      if (canvas) {
        for (let row = 0; row < h; row++) data.copy(canvas.rgba, ((y + row) * canvas.width + x) * 4, at + row * w * 4, at + (row + 1) * w * 4);
        canvas.tiles++;
      }
      at += w * h * 4;
    }
  }
}
