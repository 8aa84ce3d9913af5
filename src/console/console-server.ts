/**
 * The web console: an HTTP server (node:http) serving the page from
 * src/console/page/, a small JSON API, and one WebSocket per open page
 * (the `ws` package) over which the page gets the state, the screens it
 * watches, and the answers to what it asks the service to do.
 *
 *     GET /?token=T        sets the token cookie, sends the browser on to /
 *     GET /                the page (and /console.js, /console.css)
 *     GET /api/state       the state the page shows, as JSON
 *     GET /api/screenshot?uuid=U   a display device's screen now, as PNG
 *     GET /ws              the page's WebSocket (see page-session.ts)
 *
 * Every request needs the token (see access-token.ts); the WebSocket also
 * needs to come from the console's own origin. The state is pushed to the
 * open pages once a second, and right after a page changed something;
 * with no page open no timer runs.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { VfioError, toVfioError, type ErrnoName } from '../base/errors.js';
import type { ConsoleLog } from './console-log.js';
import { captureScreen } from '../drivers/display/screenshot.js';
import { cookieName, newToken, presentedToken, sameOrigin, tokenMatches } from './access-token.js';
import type { ClientInfo } from '../vfio-user/client-info.js';
import { ClientRateMeter } from './client-rates.js';
import { takeState, type ConsoleService, type ConsoleState } from './console-state.js';
import { CONSOLE_LIMITS } from './limits.js';
import { hostPort, isLoopback, reachableHost, type ListenAddress } from './listen-address.js';
import { PAGE_OPS, PageSession } from './page-session.js';
import type { Screens } from './screens.js';

/** The page's files, served from the package as they are (no build step). */
const PAGE_DIR = fileURLToPath(new URL('../../../src/console/page/', import.meta.url));
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export interface ConsoleServerOptions {
  address: ListenAddress;
  service: ConsoleService;
  screens: Screens;
  log: ConsoleLog;
  /** Default: a new random token. */
  token?: string;
  /** Milliseconds between state pushes to open pages. Default 1000. */
  stateIntervalMs?: number;
  /** The clients of a running device, by UUID, with their counters and mappings. */
  clients?: (uuid: string) => ClientInfo[];
  /** Default CONSOLE_LIMITS.pageHeartbeatMs. */
  heartbeatMs?: number;
}

export class ConsoleServer {
  readonly token: string;
  private readonly pages = new Set<PageSession>();
  private readonly meter = new ClientRateMeter();
  private readonly wss: WebSocketServer;
  private readonly version: string;
  private readonly log: ConsoleLog;
  private stateTimer: NodeJS.Timeout | undefined;
  private statePushes = 0;
  private pushing = false;
  private pushAgain = false;
  private lastHeartbeat = Date.now();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly options: ConsoleServerOptions,
  ) {
    this.token = options.token ?? newToken();
    this.log = options.log;
    this.version = packageVersion();
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: CONSOLE_LIMITS.maxPageMessageBytes,
      // Screens compress well (flat colour, text); zlib runs off the main thread.
      perMessageDeflate: { zlibDeflateOptions: { level: 1 }, threshold: 1024 },
    });
    server.on('request', (req, res) => void this.request(req, res));
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Listens on `options.address`; a non-loopback address is logged as a warning. */
  static async listen(options: ConsoleServerOptions): Promise<ConsoleServer> {
    const { host, port } = options.address;
    const server = createServer({ headersTimeout: CONSOLE_LIMITS.headersTimeoutMs, requestTimeout: 30_000 });
    server.maxConnections = CONSOLE_LIMITS.maxHttpConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new VfioError(toVfioError(err).code, `cannot serve the console on ${hostPort(host, port)}: ${(err as Error).message}`, { cause: err });
    });
    const a = server.address();
    if (a === null || typeof a === 'string') throw new VfioError('EIO', 'the console has no TCP address');
    const self = new ConsoleServer(server, a.address, a.port, options);
    if (!isLoopback(a.address)) {
      options.log.warn('the console is reachable from other machines: anyone with the token can start and stop devices', {
        address: hostPort(a.address, a.port),
      });
    }
    options.log.info('console listening', { address: hostPort(a.address, a.port) });
    return self;
  }

  /** `HOST:PORT` it listens on. */
  get address(): string {
    return hostPort(this.host, this.port);
  }

  /** The URL to open, token included. */
  get url(): string {
    return `http://${hostPort(reachableHost(this.host), this.port)}/?token=${this.token}`;
  }

  /** Open pages. */
  get pageCount(): number {
    return this.pages.size;
  }

  /** How many state pushes were made (for tests: none while no page is open). */
  get pushes(): number {
    return this.statePushes;
  }

  /** Closes every page and stops listening. */
  async close(): Promise<void> {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---- HTTP --------------------------------------------------------------------

  private async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://console');
      const presented = presentedToken(req, url, cookieName(this.port));
      if (!presented || !tokenMatches(presented.token, this.token)) {
        return this.refuse(res, 401, 'EACCES', 'this needs the console token: open the URL that "uvfio console" prints');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.refuse(res, 405, 'EOPNOTSUPP', `${req.method} is not served here`);
      if (presented.via === 'query' && url.pathname === '/') {
        // Keep the token out of the address bar and history: cookie it, and reload without it.
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          'Set-Cookie': `${cookieName(this.port)}=${this.token}; HttpOnly; SameSite=Strict; Path=/`,
          Location: '/',
        });
        res.end();
        return;
      }
      const asset = ASSETS[url.pathname];
      if (asset) {
        const body = await readFile(`${PAGE_DIR}${asset.file}`);
        res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': asset.type, 'Content-Length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      if (url.pathname === '/api/state') return this.json(res, await this.state());
      if (url.pathname === '/api/screenshot') return this.screenshot(res, url.searchParams.get('uuid') ?? '');
      this.refuse(res, 404, 'ENOENT', `nothing at ${url.pathname}`);
    } catch (err) {
      const e = toVfioError(err);
      this.log.error('console request failed', { url: req.url, error: e });
      if (!res.headersSent) this.refuse(res, 500, e.code, e.message);
      else res.destroy();
    }
  }

  private screenshot(res: ServerResponse, uuid: string): void {
    let png: Uint8Array;
    try {
      png = captureScreen(this.options.screens.feed(uuid).source).png;
    } catch (err) {
      const e = toVfioError(err);
      this.refuse(res, e.code === 'ENODEV' ? 404 : 409, e.code, e.message);
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'image/png', 'Content-Length': png.length });
    res.end(png);
  }

  private json(res: ServerResponse, value: unknown, status = 200): void {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  }

  private refuse(res: ServerResponse, status: number, code: ErrnoName, message: string): void {
    this.json(res, { error: { code, message } }, status);
  }

  // ---- WebSocket -----------------------------------------------------------------

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const deny = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
    };
    const url = new URL(req.url ?? '/', 'http://console');
    const presented = presentedToken(req, url, cookieName(this.port));
    if (url.pathname !== '/ws') return deny(404, 'Not Found');
    if (!presented || !tokenMatches(presented.token, this.token)) return deny(401, 'Unauthorized');
    if (!sameOrigin(req)) return deny(403, 'Forbidden');
    if (this.pages.size >= CONSOLE_LIMITS.maxPages) return deny(503, 'Too many pages are open');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.openPage(ws));
  }

  private openPage(ws: WebSocket): void {
    const page: PageSession = new PageSession({
      ws,
      screens: this.options.screens,
      run: (op, args) => this.options.service.handle(op, args),
      changed: () => this.pushSoon(),
      log: this.log,
      onClose: () => {
        this.pages.delete(page);
        if (this.pages.size === 0) {
          clearTimeout(this.stateTimer);
          this.stateTimer = undefined;
        }
      },
    });
    this.pages.add(page);
    page.send({ t: 'hello', version: this.version, ops: PAGE_OPS });
    this.pushSoon();
  }

  // ---- state pushes --------------------------------------------------------------

  private state(): Promise<ConsoleState> {
    return takeState({
      service: this.options.service,
      isDisplay: (uuid) => this.options.screens.isDisplay(uuid),
      ...(this.options.clients ? { clients: this.options.clients } : {}),
      meter: this.meter,
      version: this.version,
    });
  }

  /** Pushes the state to every page now, then once a second while pages are open. */
  private pushSoon(): void {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    void this.push();
  }

  private async push(): Promise<void> {
    if (this.pages.size === 0) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    this.pushing = true;
    try {
      const state = await this.state();
      this.statePushes++;
      for (const p of this.pages) p.send(state);
    } catch (err) {
      this.log.error('console state failed', { error: toVfioError(err) });
    } finally {
      this.pushing = false;
    }
    if (this.pushAgain) {
      this.pushAgain = false;
      return this.push();
    }
    // The state's timer runs only while pages are open; the pages' heartbeat rides on it.
    if (Date.now() - this.lastHeartbeat >= (this.options.heartbeatMs ?? CONSOLE_LIMITS.pageHeartbeatMs)) {
      this.lastHeartbeat = Date.now();
      for (const p of this.pages) p.heartbeat();
    }
    if (this.pages.size > 0 && this.stateTimer === undefined) {
      this.stateTimer = setTimeout(() => {
        this.stateTimer = undefined;
        void this.push();
      }, this.options.stateIntervalMs ?? 1_000);
    }
  }
}

function packageVersion(): string {
  return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
}
