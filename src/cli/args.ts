/**
 * Command-line parsing on node:util's parseArgs: `uvfio VERB [OPTIONS]`,
 * each verb with its own options (mdevctl's names and short letters), plus
 * a few every verb takes. Mistakes become one EINVAL sentence.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VfioError } from '../base/errors.js';
import { normalizeUuid } from '../mdev/uuid.js';
import type { CliContext } from './context.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | string[] | boolean | undefined>;

/** One verb: its options, its help, and what it does. */
export interface Command {
  name: string;
  /** One line for `uvfio --help`. */
  summary: string;
  /** The verb's synopsis and option list for `uvfio VERB --help`. */
  help: string;
  options: OptionSpec;
  run(ctx: CliContext, values: Values): Promise<void>;
}

/** Options every verb takes. */
export const COMMON_OPTIONS: OptionSpec = {
  'runtime-dir': { type: 'string' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export const COMMON_HELP = `Common options:
  --runtime-dir DIR   sockets live here (env UVFIO_RUNTIME_DIR; default $XDG_RUNTIME_DIR/uvfio, /run/uvfio for root)
  --state-dir DIR     the definitions database lives here (env UVFIO_STATE_DIR; default ~/.local/state/uvfio, /var/lib/uvfio for root)
  -h, --help          this help`;

/** Parses a verb's arguments (everything after the verb). */
export function parseVerbArgs(command: Command, args: string[]): Values {
  try {
    const { values } = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, ...command.options },
      strict: true,
      allowPositionals: false,
    });
    return values as Values;
  } catch (err) {
    throw usageError(command.name, err as NodeJS.ErrnoException);
  }
}

function usageError(verb: string, err: NodeJS.ErrnoException): VfioError {
  const quoted = /'([^']+)'/.exec(err.message)?.[1];
  const hint = `(see "uvfio ${verb} --help")`;
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new VfioError('EINVAL', `${verb}: unknown option ${quoted ?? ''} ${hint}`.replace('  ', ' '));
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new VfioError('EINVAL', `${verb}: unexpected argument ${JSON.stringify(quoted ?? '')}: options take the form --name VALUE ${hint}`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = /(-\S+)/.exec(err.message)?.[1] ?? 'an option';
      const what = err.message.includes('does not take an argument') ? 'takes no value' : 'needs a value';
      return new VfioError('EINVAL', `${verb}: ${name.replace(/[,']/g, '')} ${what} ${hint}`);
    }
    default:
      return new VfioError('EINVAL', `${verb}: ${err.message}`);
  }
}

/** A string option, or undefined. */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A repeatable string option (`multiple: true`): every value given, in order. */
export function strs(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** A boolean option: true when given. */
export function flag(values: Values, name: string): boolean {
  return values[name] === true;
}

/** `--uuid`, checked and in canonical form, or undefined. */
export function uuidOption(values: Values): string | undefined {
  const v = str(values, 'uuid');
  if (v === undefined) return undefined;
  try {
    return normalizeUuid(v);
  } catch {
    throw new VfioError('EINVAL', `--uuid: ${JSON.stringify(v)} is not a UUID (8-4-4-4-12 hex digits)`);
  }
}

/** `--uuid` for verbs that cannot do without it. */
export function requiredUuid(values: Values, verb: string): string {
  const uuid = uuidOption(values);
  if (uuid === undefined) throw new VfioError('EINVAL', `${verb} needs --uuid`);
  return uuid;
}

/** `--index`: a non-negative integer, or undefined. */
export function indexOption(values: Values): number | undefined {
  const v = str(values, 'index');
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new VfioError('EINVAL', `--index: ${JSON.stringify(v)} is not a non-negative integer`);
  }
  return Number(v);
}

/** Drops undefined and false members, so a request carries only the options given. */
export function given<T extends Record<string, unknown>>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== false)) as Partial<T>;
}
