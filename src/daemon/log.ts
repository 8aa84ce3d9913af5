/**
 * Structured log lines: one JSON object per line on stderr, e.g.
 *
 *     {"time":"2026-11-21T13:20:00.000Z","level":"info","msg":"device started","uuid":"…","parent":"mtty"}
 *
 * JSON rather than logfmt because values (paths, error sentences) need no
 * quoting rules and `jq` reads it. Human output (the QEMU lines) goes to
 * stdout instead, so the two never mix.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  constructor(
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly minLevel: LogLevel = 'info',
    private readonly base: LogFields = {},
  ) {}

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger(this.write, this.minLevel, { ...this.base, ...fields });
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (RANK[level] < RANK[this.minLevel]) return;
    const line = { time: new Date().toISOString(), level, msg, ...this.base, ...fields };
    this.write(`${JSON.stringify(line, errorsAsText)}\n`);
  }
}

/** Errors serialise as their code and sentence (JSON.stringify would give `{}`). */
function errorsAsText(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${value.message}` : value.message;
  }
  return value;
}

/** Parses `UVFIO_LOG_LEVEL`; info when unset or unknown. */
export function logLevelFrom(value: string | undefined): LogLevel {
  return value !== undefined && Object.hasOwn(RANK, value) ? (value as LogLevel) : 'info';
}
