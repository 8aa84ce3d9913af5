/**
 * The command line's end of the control socket: one connection per
 * command, one request, one answer (see src/daemon/protocol.ts).
 */
import { createConnection, type Socket } from 'node:net';
import { VfioError, isVfioError, type ErrnoName } from '../base/errors.js';
import {
  CONTROL_PROTOCOL_VERSION,
  LineDecoder,
  encodeLine,
  type ArgsOf,
  type ControlEvent,
  type ControlOp,
  type ControlResponse,
  type ResultOf,
} from '../daemon/protocol.js';

export interface RequestOptions {
  /** Give up connecting after this long. Default 5 s. */
  connectTimeoutMs?: number;
  /** Give up waiting for the answer after this long; none by default (stop waits for clients to let go). */
  replyTimeoutMs?: number;
  /** Asks for the request's events (see protocol.ts) and gets each one here, before the result. */
  onEvent?: (event: unknown) => void;
}

/** The errno of "no daemon listens there". */
const DAEMON_NOT_RUNNING: ErrnoName = 'ENOTCONN';

/** True for the error request() gives when no daemon listens on the socket. */
export function isDaemonNotRunning(err: unknown): boolean {
  return isVfioError(err, DAEMON_NOT_RUNNING);
}

/** Sends one request to the daemon at `socketPath` and returns its result, or throws its error. */
export async function request<O extends ControlOp>(socketPath: string, op: O, args: ArgsOf<O>, options: RequestOptions = {}): Promise<ResultOf<O>> {
  const socket = await connect(socketPath, options.connectTimeoutMs ?? 5_000);
  try {
    const events = options.onEvent === undefined ? {} : { events: true };
    socket.write(encodeLine({ v: CONTROL_PROTOCOL_VERSION, id: 1, op, args, ...events }));
    const response = await readResponse(socket, socketPath, options);
    if (!response.ok) throw new VfioError(response.error.code, response.error.message);
    return response.result as ResultOf<O>;
  } finally {
    socket.destroy();
  }
}

function connect(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new VfioError('ETIMEDOUT', `the daemon at ${path} did not accept a connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connectError(err, path));
    });
  });
}

function connectError(err: NodeJS.ErrnoException, path: string): VfioError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new VfioError(DAEMON_NOT_RUNNING, `no uvfio daemon is running (nothing listens on ${path}); start one with "uvfio daemon"`);
    case 'EACCES':
    case 'EPERM':
      return new VfioError('EACCES', `cannot reach the daemon at ${path}: permission denied (it belongs to another user?)`);
    default:
      return new VfioError('EIO', `cannot reach the daemon at ${path}: ${err.message}`);
  }
}

function readResponse(socket: Socket, path: string, options: RequestOptions): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const decoder = new LineDecoder();
    const timeoutMs = options.replyTimeoutMs;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => reject(new VfioError('ETIMEDOUT', `the daemon at ${path} did not answer within ${timeoutMs} ms`)), timeoutMs);
    let answered = false;
    const done = () => {
      answered = true;
      clearTimeout(timer);
    };
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      try {
        for (const line of decoder.push(chunk)) {
          const message = parseLine(line, path);
          if ('event' in message) {
            options.onEvent?.(message.event);
            continue;
          }
          done();
          resolve(message);
          return;
        }
      } catch (err) {
        done();
        reject(err);
      }
    });
    socket.once('error', (err) => {
      done();
      reject(new VfioError('ECONNRESET', `lost the connection to the daemon at ${path}: ${err.message}`));
    });
    socket.once('end', () => {
      done();
      reject(new VfioError('ECONNRESET', `the daemon at ${path} closed the connection without answering (is it shutting down?)`));
    });
  });
}

function parseLine(line: string, path: string): ControlResponse | ControlEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new VfioError('EPROTO', `the daemon at ${path} answered something that is not JSON`);
  }
  const r = value as Partial<{ ok: unknown; result: unknown; error: { code?: unknown; message?: unknown }; event: unknown }>;
  if (r?.ok === true) return value as ControlResponse;
  if (r !== null && typeof r === 'object' && r.ok === undefined && 'event' in r) return value as ControlEvent;
  if (r?.ok === false && typeof r.error?.message === 'string') {
    const code = typeof r.error.code === 'string' ? r.error.code : 'EIO';
    return { id: 1, ok: false, error: { code: code as ErrnoName, message: r.error.message } };
  }
  throw new VfioError('EPROTO', `the daemon at ${path} answered in an unknown shape`);
}
