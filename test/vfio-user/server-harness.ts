/**
 * Helpers for the transport tests: a server over fixture devices in a
 * temporary directory, a raw peer that speaks bytes to it through a real
 * UNIX socket, and fd-leak accounting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'node:test';
import { VfioCore } from '../../src/core/index.js';
import { closeFds, openFdCount } from '../../src/native/index.js';
import { UnixSocket } from '../../src/vfio-user/transport/unix-socket.js';
import {
  Command,
  copyFrame,
  encodeMessage,
  type Frame,
  MessageFramer,
  type ServerLimits,
  type ServerLog,
  VfioUserClient,
  type VfioUserClientOptions,
  VfioUserServer,
} from '../../src/vfio-user/index.js';
import { FixtureDevice, type FixtureOptions } from './fixture-device.js';
import { until } from '../support/until.js';

/** Resolves after the event loop had a chance to run I/O callbacks. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Bench {
  dir: string;
  core: VfioCore;
  server: VfioUserServer;
  devices: FixtureDevice[];
  /** the first device */
  device: FixtureDevice;
  path(name?: string): string;
  connect(options?: VfioUserClientOptions & { name?: string }): Promise<VfioUserClient>;
  /** closes the server, unregisters the devices, removes the directory */
  close(): Promise<void>;
}

export interface StartOptions {
  names?: string[];
  device?: Omit<FixtureOptions, 'name' | 'core'>;
  limits?: Partial<ServerLimits>;
  /** where the server logs (silent by default) */
  log?: ServerLog;
  requestBackoffMs?: (n: number) => number;
}

/** A server over `names` fixture devices (default one, "dev0"). */
export function startServer(options: StartOptions = {}): Bench {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-vu-'));
  const core = new VfioCore({ requestBackoffMs: options.requestBackoffMs ?? ((n) => Math.min(10 * 2 ** n, 200)) });
  const devices = (options.names ?? ['dev0']).map((name) => {
    const d = new FixtureDevice({ name, core, ...options.device });
    d.register();
    return d;
  });
  const server = new VfioUserServer({
    core,
    socketDir: join(dir, 'sockets'),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  const path = (name = devices[0]!.name): string => {
    const p = server.socketPath(name);
    if (p === undefined) throw new Error(`${name} is not served`);
    return p;
  };
  return {
    dir,
    core,
    server,
    devices,
    device: devices[0]!,
    path,
    connect: (o = {}) => VfioUserClient.connect(path(o.name), o),
    close: async () => {
      await server.close();
      await Promise.all(devices.filter((d) => d.state === 'registered' || d.state === 'unregistering').map((d) => d.unregister()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh server for every test of the file (handed to `started`, which
 * may set up more, e.g. a client), closed after it (`ending` first), and a
 * check that the process has exactly the fds it had before the test.
 */
export function perTestServer(options: StartOptions, started: (bench: Bench) => void | Promise<void>, ending?: () => void): void {
  let bench: Bench | undefined;
  let fds = 0;
  beforeEach(async () => {
    fds = openFdCount();
    bench = startServer(options);
    await started(bench);
  });
  afterEach(async () => {
    ending?.();
    await bench?.close();
    await until(() => openFdCount() === fds, `fds back to ${fds} (now ${openFdCount()})`, 2000);
  });
}

/**
 * Runs `fn` and checks that this process has as many fds open afterwards
 * as before (server and client live in the same process, so both sides'
 * fds are counted).
 */
export async function withoutFdLeak<T>(fn: () => Promise<T>): Promise<T> {
  const before = openFdCount();
  const result = await fn();
  await tick(5);
  const after = openFdCount();
  if (after !== before) throw new Error(`fd leak: ${before} fds open before, ${after} after`);
  return result;
}

/**
 * The far end of a session, played by a test: it writes raw bytes, and
 * collects the messages the other side sends (copied, fds included: they
 * are the peer's to close) and the moment it hangs up. A subclass says how
 * bytes travel.
 */
export abstract class Peer {
  readonly frames: Frame[] = [];
  closed = false;
  readonly #framer = new MessageFramer({ onMessage: (f) => this.frames.push(copyFrame(f)), maxMessageSize: 64 * 1024 * 1024 });
  #waiters: (() => void)[] = [];

  /** Sends bytes as one write; the caller keeps its fds. */
  abstract write(bytes: Uint8Array, fds?: readonly number[]): void;
  /** Hangs up. */
  abstract close(): void;

  /** Bytes from the other side, with the fds that came with them. */
  protected received(bytes: Uint8Array, fds: readonly number[]): void {
    closeFds(this.#framer.push(bytes, fds));
    this.#wake();
  }

  /** The other side hung up. */
  protected ended(): void {
    this.closed = true;
    closeFds(this.#framer.close().fds);
    this.#wake();
  }

  /** The next frame (in arrival order), or null when the other side hung up first. */
  async next(ms = 2000): Promise<Frame | null> {
    const end = Date.now() + ms;
    while (this.frames.length === 0) {
      if (this.closed) return null;
      if (Date.now() > end) throw new Error('timed out waiting for a message from the other side');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, end - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.frames.shift()!;
  }

  /** Resolves once the other side closed the connection. */
  async waitClosed(ms = 2000): Promise<void> {
    await until(() => this.closed, 'the other side to close the connection', ms);
  }

  /** Sends a VERSION (0.2 with `json`) and returns its reply. */
  async negotiate(json = '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576}}', minor = 2): Promise<Frame> {
    this.write(encodeMessage(0x7777, Command.VERSION, 0, versionText(0, minor, json)));
    const reply = await this.next();
    if (reply === null) throw new Error('the server closed instead of answering VERSION');
    closeFds(reply.fds);
    return reply;
  }

  /** Closes the fds of every frame not taken yet. */
  dropFrames(): void {
    for (const f of this.frames.splice(0)) closeFds(f.fds);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** A peer on a real UNIX socket connected to `path`. */
export class RawPeer extends Peer {
  readonly socket: UnixSocket;

  constructor(path: string) {
    super();
    this.socket = UnixSocket.connect(path);
    this.socket.onData = (chunk, fds) => this.received(chunk, fds);
    this.socket.onClose = () => this.ended();
  }

  write(bytes: Uint8Array, fds?: readonly number[]): void {
    this.socket.write(bytes, fds);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A VERSION body: major, minor, the JSON text and its NUL (no JSON when null). */
export function versionText(major: number, minor: number, json: string | null): Uint8Array {
  const text = json === null ? new Uint8Array(0) : new TextEncoder().encode(json);
  const b = new Uint8Array(4 + text.length + (json === null ? 0 : 1));
  b[0] = major & 0xff;
  b[1] = major >> 8;
  b[2] = minor & 0xff;
  b[3] = minor >> 8;
  b.set(text, 4);
  return b;
}

/** QEMU 11.1's VERSION proposal, byte for byte (hw/vfio-user/proxy.c caps_json()). */
export const QEMU_PROPOSAL =
  '{"capabilities":{"pgsizes":4096,"max_msg_fds":16,"max_dma_maps":65535,"max_data_xfer_size":1048576,"migration":{"max_bitmap_size":268435456,"pgsize":4096},"write_multiple":true}}';
