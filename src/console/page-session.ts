/**
 * One browser page's WebSocket. The page sends JSON requests:
 *
 *     {"t":"watch","uuid":U}      show device U's screen (answers "frame", then tiles; see page-screen.ts)
 *     {"t":"unwatch","uuid":U}
 *     {"t":"op","id":N,"op":"start"|"stop"|"define"|"undefine","args":{…}}
 *
 * and gets JSON back: `state` (pushed by the server), `reply`
 * (`{"t":"reply","id":N,"ok":true,"result":…}` or `"ok":false,"error":{code,message}`,
 * from the same service as the command line's, so the same checks and
 * errors), `frame`, `ended`, `screen-error` and `error`.
 */
import type { RawData, WebSocket } from 'ws';
import { VfioError, toVfioError } from '../base/errors.js';
import type { ConsoleLog } from './console-log.js';
import { CONSOLE_LIMITS } from './limits.js';
import { PageScreen } from './page-screen.js';
import type { Screens } from './screens.js';

/** What a page may ask the service to do. */
export const PAGE_OPS = ['start', 'stop', 'define', 'undefine'] as const;

export interface PageSessionOptions {
  ws: WebSocket;
  screens: Screens;
  /** Runs one of PAGE_OPS through the daemon's service. */
  run: (op: string, args: unknown) => Promise<unknown>;
  /** Called after an op that succeeded: the state changed. */
  changed: () => void;
  log: ConsoleLog;
  onClose: () => void;
}

export class PageSession {
  private readonly screens = new Map<string, PageScreen>();
  private nextSlot = 1;
  private opsInFlight = 0;
  private closed = false;
  private answered = true;

  constructor(private readonly options: PageSessionOptions) {
    const { ws } = options;
    ws.on('pong', () => (this.answered = true));
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', () => this.close());
    ws.on('error', () => this.close());
  }

  /** Sends a JSON message (dropped once the page is gone). */
  send(message: unknown): void {
    const ws = this.options.ws;
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }

  /**
   * Called every CONSOLE_LIMITS.pageHeartbeatMs: a page that did not answer
   * the last ping is gone (its machine vanished without closing the
   * connection) and is dropped, so it holds no page slot forever.
   */
  heartbeat(): void {
    const ws = this.options.ws;
    if (!this.answered) {
      this.options.log.info('console page dropped: it did not answer a ping');
      ws.terminate();
      return;
    }
    this.answered = false;
    ws.ping();
  }

  /** Screens this page watches. */
  get watching(): number {
    return this.screens.size;
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    let msg: { t?: unknown; uuid?: unknown; id?: unknown; op?: unknown; args?: unknown };
    try {
      if (isBinary) throw new VfioError('EPROTO', 'the console takes JSON text messages only');
      // A text message arrives whole, as one Buffer (ws's default binaryType).
      const parsed: unknown = JSON.parse((data as Buffer).toString('utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new VfioError('EPROTO', 'a message must be a JSON object');
      msg = parsed;
    } catch (err) {
      this.send({ t: 'error', error: errorOf(err instanceof SyntaxError ? new VfioError('EPROTO', 'a message is not valid JSON') : err) });
      return;
    }
    switch (msg.t) {
      case 'watch':
        return this.watch(msg.uuid);
      case 'unwatch':
        if (typeof msg.uuid === 'string') this.unwatch(msg.uuid);
        return;
      case 'op':
        return void this.op(msg.id, msg.op, msg.args);
      default:
        this.send({ t: 'error', error: errorOf(new VfioError('EINVAL', `unknown message type ${JSON.stringify(msg.t)}`)) });
    }
  }

  private watch(uuid: unknown): void {
    if (typeof uuid !== 'string') {
      this.send({ t: 'error', error: errorOf(new VfioError('EINVAL', 'watch needs a "uuid"')) });
      return;
    }
    if (this.screens.has(uuid)) return;
    try {
      const feed = this.options.screens.feed(uuid);
      // Slots are 16 bits on the wire; a page that watches 65535 screens in turn starts over.
      const slot = this.nextSlot;
      this.nextSlot = (this.nextSlot % 0xffff) + 1;
      this.screens.set(uuid, new PageScreen(this.options.ws, uuid, slot, feed, (s) => this.screens.delete(s.uuid)));
    } catch (err) {
      this.send({ t: 'screen-error', uuid, error: errorOf(err) });
    }
  }

  private unwatch(uuid: string): void {
    this.screens.get(uuid)?.stop();
    this.screens.delete(uuid);
  }

  private async op(id: unknown, op: unknown, args: unknown): Promise<void> {
    const replyId = typeof id === 'number' && Number.isSafeInteger(id) ? id : 0;
    try {
      if (typeof op !== 'string' || !(PAGE_OPS as readonly string[]).includes(op)) {
        throw new VfioError('EINVAL', `the console does not do ${JSON.stringify(op)} (it does ${PAGE_OPS.join(', ')})`);
      }
      if (this.opsInFlight >= CONSOLE_LIMITS.maxPageOpsInFlight) {
        throw new VfioError('EBUSY', `${CONSOLE_LIMITS.maxPageOpsInFlight} requests of this page are still running; wait for one to finish`);
      }
      this.opsInFlight++;
      let result: unknown;
      try {
        result = await this.options.run(op, args ?? {});
      } finally {
        this.opsInFlight--;
      }
      this.options.log.info('console request done', { op });
      this.send({ t: 'reply', id: replyId, ok: true, result });
      this.options.changed();
    } catch (err) {
      this.send({ t: 'reply', id: replyId, ok: false, error: errorOf(err) });
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.screens.values()) s.stop();
    this.screens.clear();
    this.options.onClose();
  }
}

function errorOf(err: unknown): { code: string; message: string } {
  const e = toVfioError(err);
  return { code: e.code, message: e.message };
}
