/**
 * Checks the `args` object of a control request before the service touches
 * it: the socket is the owner's only, but a request is still input, and a
 * wrong shape must be one clear EINVAL, not a TypeError deep inside.
 */
import { VfioError } from '../base/errors.js';

type FieldKind = 'string' | 'text' | 'boolean' | 'index' | 'object';

/** Field name → kind; a trailing `?` marks it optional. */
export type ArgSpec = Record<string, FieldKind | `${FieldKind}?`>;

/**
 * Checks `args` against `spec` and returns it as an object: EINVAL naming
 * `op` and the field for a missing, unknown or mistyped argument. Absent
 * args count as `{}`.
 */
export function checkArgs(op: string, args: unknown, spec: ArgSpec): Record<string, unknown> {
  if (args === undefined) args = {};
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new VfioError('EINVAL', `${op}: arguments must be an object`);
  }
  const obj = args as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    // hasOwn, not `in`: a request's "toString" or "__proto__" is no argument either.
    if (!Object.hasOwn(spec, key)) throw new VfioError('EINVAL', `${op}: unknown argument "${key}"`);
  }
  for (const [key, want] of Object.entries(spec)) {
    const optional = want.endsWith('?');
    const kind = (optional ? want.slice(0, -1) : want) as FieldKind;
    const value = obj[key];
    if (value === undefined) {
      if (!optional) throw new VfioError('EINVAL', `${op}: argument "${key}" is required`);
      continue;
    }
    if (!fits(kind, value)) throw new VfioError('EINVAL', `${op}: argument "${key}" must be ${WORDS[kind]}`);
  }
  return obj;
}

const WORDS: Record<FieldKind, string> = {
  string: 'a non-empty string',
  text: 'a string',
  boolean: 'true or false',
  index: 'a non-negative integer',
  object: 'an object',
};

function fits(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string' && value !== '';
    case 'text':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'index':
      return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
  }
}
