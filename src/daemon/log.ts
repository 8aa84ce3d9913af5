/**
 * The daemon's log: one line per event on stderr, in one of two formats.
 *
 * - `json` (for machines, and when stderr is not a terminal): one object
 *   per line, which `jq` reads and values need no quoting rules for:
 *
 *       {"time":"2026-11-21T13:20:00.000Z","level":"info","msg":"device started","uuid":"…","parent":"mtty"}
 *
 * - `human` (when stderr is a terminal): the same fields as `key=value`,
 *   a value quoted only when it has to be:
 *
 *       2026-11-21 13:20:00.000 info  device started uuid=… parent=mtty
 *
 * Under systemd, whose journal takes stderr, each line starts with its
 * syslog priority (`<6>`), which the journal turns into the entry's
 * priority (so `journalctl -p warning` works), and human lines leave out
 * the time the journal keeps itself. Output for people (the QEMU lines)
 * goes to stdout instead, so the two never mix.
 */
import { fstatSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

/** `json` or `human`, as the file's comment shows them. */
export type LogFormat = 'json' | 'human';

export interface LogStyle {
  /** Default json. */
  format?: LogFormat;
  /** Start each line with its syslog priority and leave the time to the journal. Default false. */
  journal?: boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog(3) priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR. */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export class Logger {
  constructor(
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly minLevel: LogLevel = 'info',
    private readonly base: LogFields = {},
    private readonly style: LogStyle = {},
  ) {}

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger(this.write, this.minLevel, { ...this.base, ...fields }, this.style);
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
    const journal = this.style.journal === true;
    const prefix = journal ? `<${PRIORITY[level]}>` : '';
    const all = { ...this.base, ...fields };
    if (this.style.format === 'human') {
      const time = journal ? '' : `${new Date().toISOString().replace('T', ' ').replace('Z', '')} `;
      this.write(`${prefix}${time}${level.padEnd(5)} ${oneLine(msg)}${humanFields(all)}\n`);
      return;
    }
    const line = { time: new Date().toISOString(), level, msg, ...all };
    this.write(`${prefix}${JSON.stringify(line, errorsAsText)}\n`);
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

/** ` key=value …`: a value bare when it is safe to read so, JSON otherwise. */
function humanFields(fields: LogFields): string {
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const v = value instanceof Error ? errorsAsText(key, value) : value;
    const text = typeof v === 'string' && /^[^\s"=\\]+$/.test(v) ? v : JSON.stringify(v, errorsAsText);
    out += ` ${key}=${text}`;
  }
  return out;
}

/** A message never breaks the one-line-per-event rule. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

/** Parses `UVFIO_LOG_LEVEL`; info when unset or unknown. */
export function logLevelFrom(value: string | undefined): LogLevel {
  return value !== undefined && Object.hasOwn(RANK, value) ? (value as LogLevel) : 'info';
}

/**
 * How to log on stderr: `choice` (`--log-format`) json or human, or auto:
 * human on a terminal, json otherwise; and whether stderr is systemd's
 * journal (JOURNAL_STREAM names its device and inode, as systemd.exec(5)
 * says to check).
 */
export function stderrLogStyle(choice: LogFormat | 'auto', env: NodeJS.ProcessEnv = process.env): Required<LogStyle> {
  return {
    format: choice === 'auto' ? (process.stderr.isTTY ? 'human' : 'json') : choice,
    journal: stderrIsJournal(env.JOURNAL_STREAM),
  };
}

function stderrIsJournal(stream: string | undefined): boolean {
  const m = /^(\d+):(\d+)$/.exec(stream ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}
