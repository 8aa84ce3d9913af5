/**
 * Command-line parsing on node:util's parseArgs: `uvfio VERB [OPTIONS]`,
 * each verb with its own options (mdevctl's names and short letters), plus
 * a few every verb takes. Mistakes become one EINVAL sentence.
 *
 * A verb is described once, as data (Command): its synopsis, description,
 * options and examples. The parser, `--help` and `uvfio help VERB`, the man
 * page and the shell completions are all made from that one description.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VfioError } from '../base/errors.js';
import { normalizeUuid } from '../mdev/uuid.js';
import type { CliContext } from './context.js';

export type Values = Record<string, string | string[] | boolean | undefined>;

/**
 * What a shell completes for an option's value: running and defined UUIDs,
 * parent names, type ids, a path, a group name, or one of fixed words.
 */
export type Completion = 'uuid' | 'parent' | 'type' | 'file' | 'dir' | 'group' | 'verb' | readonly string[];

/** One option of a verb. */
export interface OptionDoc {
  /** The long name, without dashes. */
  name: string;
  /** The one-letter name, without the dash. */
  short?: string;
  /** The value's placeholder (`UUID`); absent for a flag that takes none. */
  value?: string;
  /** May be given more than once; every value is kept, in order (read it with strs()). */
  multiple?: boolean;
  /** One line for the help and the man page. */
  help: string;
  /** Accepted (for mdevctl's sake) but not shown in the help. */
  hidden?: boolean;
  /** What the shell offers for the value. */
  complete?: Completion;
}

/** A worked example for `uvfio help VERB` and the man page. */
export interface Example {
  /** The command line, without a prompt. */
  command: string;
  /** What it does, one line. */
  says: string;
}

/** One verb: how it is called, what it does, and the code that does it. */
export interface Command {
  name: string;
  /** One line for `uvfio --help`. */
  summary: string;
  /** Synopsis lines, each after `uvfio `: `stop -u UUID [--json]`. */
  synopsis: string[];
  /** What the verb does: paragraphs separated by a blank line. */
  description: string;
  options: OptionDoc[];
  /** The positional argument the verb takes, if any (`help VERB`). */
  operand?: { name: string; complete?: Completion };
  examples: Example[];
  run(ctx: CliContext, values: Values, operands: string[]): Promise<void>;
}

/** Options every verb takes. */
export const COMMON_OPTIONS: readonly OptionDoc[] = [
  {
    name: 'runtime-dir',
    value: 'DIR',
    help: 'sockets live here (env UVFIO_RUNTIME_DIR; default $XDG_RUNTIME_DIR/uvfio, /run/uvfio for root)',
    complete: 'dir',
  },
  {
    name: 'state-dir',
    value: 'DIR',
    help: 'the definitions database lives here (env UVFIO_STATE_DIR; default ~/.local/state/uvfio, /var/lib/uvfio for root)',
    complete: 'dir',
  },
  { name: 'help', short: 'h', help: 'this help' },
];

/** node:util's option table for a verb and the common options. */
function parseArgsOptions(command: Command): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const o of [...COMMON_OPTIONS, ...command.options]) {
    out[o.name] = {
      type: o.value === undefined ? 'boolean' : 'string',
      ...(o.short === undefined ? {} : { short: o.short }),
      ...(o.multiple === true ? { multiple: true } : {}),
    };
  }
  return out;
}

/** Parses a verb's arguments (everything after the verb): option values, and operands where the verb takes one. */
export function parseVerbArgs(command: Command, args: string[]): { values: Values; operands: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseArgsOptions(command), strict: true, allowPositionals: command.operand !== undefined });
  } catch (err) {
    throw usageError(command.name, err as NodeJS.ErrnoException);
  }
  if (parsed.positionals.length > 1) {
    throw new VfioError(
      'EINVAL',
      `${command.name}: one ${command.operand!.name} at most, not ${parsed.positionals.length} (see "uvfio help ${command.name}")`,
    );
  }
  return { values: parsed.values as Values, operands: parsed.positionals };
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

/** A repeatable string option (`multiple`): every value given, in order. */
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

// ---- options several verbs share -------------------------------------------

/** `-u UUID` with the help line `help`. */
export function uuidOpt(help: string): OptionDoc {
  return { name: 'uuid', short: 'u', value: 'UUID', help, complete: 'uuid' };
}

/** `-p PARENT` with the help line `help`. */
export function parentOpt(help: string): OptionDoc {
  return { name: 'parent', short: 'p', value: 'PARENT', help, complete: 'parent' };
}

/** `-t TYPE` with the help line `help`. */
export function typeOpt(help: string): OptionDoc {
  return { name: 'type', short: 't', value: 'TYPE', help, complete: 'type' };
}

/** `--json` with the help line `help`. */
export function jsonOpt(help: string): OptionDoc {
  return { name: 'json', help };
}

/** `--jsonfile FILE` with the help line `help`. */
export function jsonfileOpt(help: string): OptionDoc {
  return { name: 'jsonfile', value: 'FILE', help, complete: 'file' };
}
