/**
 * The control protocol between `uvfio` commands and the daemon, over the
 * control socket (UNIX, mode 0600): newline-delimited JSON, one request
 * line answered by one response line, any number per connection, answered
 * in order.
 *
 *     → {"v":1,"id":7,"op":"stop","args":{"uuid":"…"}}
 *     ← {"id":7,"ok":true,"result":{…}}
 *     ← {"id":7,"ok":false,"error":{"code":"ENODEV","message":"…"}}
 *
 * A request that says `"events":true` may get event lines before its
 * response: what a long operation is doing meanwhile (who holds the device
 * `stop` waits for). A request without it gets none.
 *
 *     → {"v":1,"id":8,"op":"stop","args":{"uuid":"…"},"events":true}
 *     ← {"id":8,"event":{"event":"waiting","clients":[…],"waitedMs":1000}}
 *     ← {"id":8,"ok":true,"result":{…}}
 *
 * `v` is the protocol version; a daemon answers a request of another
 * version with EPROTO, so a mismatched command line fails in words.
 */
import { VfioError, type ErrnoName } from '../base/errors.js';
import type { ClientInfo } from '../vfio-user/client-info.js';
import type { ConfigJson, MdevAttr, StartMode } from './definition.js';
import type { TraceEvent, TraceHeader, TraceSummary } from './trace-record.js';

export const CONTROL_PROTOCOL_VERSION = 1;

/** One line may not exceed this (a definition is a few hundred bytes). */
export const MAX_LINE_BYTES = 1 << 20;

/** A type a parent offers, with its live availability (`uvfio types`). */
export interface TypeInfo {
  parent: string;
  /** e.g. `mtty-1` */
  type: string;
  name: string;
  description?: string;
  deviceApi: string;
  availableInstances: number;
}

/** A client connected to a running device: who holds it (`list -v`, `stop`), as the server tells. */
export type DeviceClient = Pick<ClientInfo, 'id' | 'pid' | 'uid' | 'gid' | 'command' | 'connectedAt' | 'bound'>;

/** What `stop` reports while it waits (with `"events":true`). */
export type StopEvent =
  | {
      /** The device is still held: its clients were asked to let go (`asked`: REQ reached them). */
      event: 'waiting';
      clients: Array<DeviceClient & { asked: boolean }>;
      waitedMs: number;
    }
  | {
      /** These clients are being dropped: `--force`, or they outlasted `--timeout`. */
      event: 'dropping';
      clients: DeviceClient[];
      reason: 'force' | 'timeout';
      waitedMs: number;
    };

/** A device as `list` shows it: defined, running, or both. */
export interface MdevInfo {
  uuid: string;
  parent: string;
  mdevType: string;
  /** The definition's start mode; `manual` for a transient device, as in mdevctl. */
  start: StartMode;
  /** The definition's attributes, or those a running device was started with. */
  attrs: MdevAttr[];
  active: boolean;
  defined: boolean;
  /** The device's vfio-user socket while it runs. */
  socket?: string;
  /** `HOST:PORT` of the VNC server showing a running display device's screen. */
  vnc?: string;
  /** Who is connected to it, while it runs and is served. */
  clients?: DeviceClient[];
}

/** Each operation's arguments and result. Optional fields mirror the command line's options. */
export interface ControlOps {
  ping: {
    args: Record<string, never>;
    result: { pid: number; runtimeDir: string; stateDir: string };
  };
  console: {
    args: Record<string, never>;
    /** `url`: the page to open, token included; `address`: where the console listens. */
    result: { url: string; address: string };
  };
  types: {
    args: { parent?: string };
    result: { types: TypeInfo[] };
  };
  list: {
    args: { defined?: boolean; uuid?: string; parent?: string };
    /** `problems`: one sentence per damaged definition that was left out. */
    result: { devices: MdevInfo[]; problems: string[] };
  };
  define: {
    /** `addattr` with `value`: the definition's one attribute (more with modify). */
    args: { uuid?: string; parent?: string; type?: string; auto?: boolean; addattr?: string; value?: string; config?: ConfigJson };
    /** `generated`: the UUID was made up here (mdevctl then prints it). */
    result: { device: MdevInfo; generated: boolean };
  };
  undefine: {
    args: { uuid: string; parent?: string };
    result: { removed: Array<{ uuid: string; parent: string }> };
  };
  start: {
    /** `addattr` with `value`: an attribute of a transient device (started from --parent and --type). */
    args: { uuid?: string; parent?: string; type?: string; addattr?: string; value?: string; config?: ConfigJson };
    result: { device: MdevInfo; generated: boolean };
  };
  stop: {
    /**
     * Without `force` or `timeoutMs` it waits until the clients let go;
     * `timeoutMs` then drops those still there; `force` drops them at once.
     */
    args: { uuid: string; timeoutMs?: number; force?: boolean };
    /** `dropped`: the clients that were dropped rather than let go. */
    result: { device: MdevInfo; dropped: DeviceClient[] };
    event: StopEvent;
  };
  screenshot: {
    /** `path`: absolute; the daemon writes the PNG there. */
    args: { uuid: string; path: string };
    result: { plane: { format: string; width: number; height: number; stride: number; offset: number } };
  };
  migrate: {
    /**
     * `socket`: the destination device's vfio-user socket (absolute), of
     * the same type; `precopyRounds`: PRE_COPY rounds while the source runs.
     */
    args: { uuid: string; socket: string; precopyRounds?: number };
    /** Bytes moved before and after the source stopped; its downtime and the whole move, in ms. */
    result: { precopyBytes: number; stopCopyBytes: number; precopyRounds: number; downtimeMs: number; totalMs: number };
  };
  trace: {
    /** Needs `"events":true`: the header, then every event, until the device stops or the connection closes. */
    args: { uuid: string };
    result: TraceSummary;
    event: TraceHeader | TraceEvent;
  };
  modify: {
    args: {
      uuid: string;
      parent?: string;
      type?: string;
      auto?: boolean;
      manual?: boolean;
      addattr?: string;
      value?: string;
      delattr?: boolean;
      index?: number;
      config?: ConfigJson;
    };
    result: { device: MdevInfo };
  };
}

export type ControlOp = keyof ControlOps;
export type ArgsOf<O extends ControlOp> = ControlOps[O]['args'];
export type ResultOf<O extends ControlOp> = ControlOps[O]['result'];
/** The events an operation may send before its response (never, for most). */
export type EventOf<O extends ControlOp> = ControlOps[O] extends { event: infer E } ? E : never;

export const CONTROL_OPS: readonly ControlOp[] = [
  'ping',
  'console',
  'types',
  'list',
  'define',
  'undefine',
  'start',
  'stop',
  'modify',
  'screenshot',
  'migrate',
  'trace',
];

export interface ControlRequest<O extends ControlOp = ControlOp> {
  v: number;
  id: number;
  op: O;
  args: ArgsOf<O>;
  /** Send event lines before the response (see the file's comment). */
  events?: boolean;
}

export type ControlResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { code: ErrnoName; message: string } };

/** A line sent before a request's response, when the request asked for events. */
export interface ControlEvent {
  id: number;
  event: unknown;
}

/**
 * Splits a byte stream into lines. Keeps the unfinished tail of a chunk for
 * the next one; EMSGSIZE once a line outgrows MAX_LINE_BYTES.
 */
export class LineDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      this.check(piece.length);
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      lines.push(line.toString('utf8'));
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.check(rest.length);
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return lines;
  }

  /** Bytes received after the last newline. */
  get buffered(): number {
    return this.pendingBytes;
  }

  private check(more: number): void {
    if (this.pendingBytes + more > MAX_LINE_BYTES) {
      throw new VfioError('EMSGSIZE', `a control message is longer than ${MAX_LINE_BYTES} bytes`);
    }
  }
}

/** Serialises one message as a line. */
export function encodeLine(message: ControlRequest | ControlResponse | ControlEvent): string {
  return `${JSON.stringify(message)}\n`;
}
