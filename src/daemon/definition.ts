/**
 * A device definition, and mdevctl's JSON shape for it:
 *
 *     { "mdev_type": "mtty-1", "start": "auto" | "manual",
 *       "attrs": [ { "name": "value" }, ... ] }
 *
 * The same shape is read from `--jsonfile`, printed by `list --dumpjson`
 * and checked again whenever a row is read back from the store, so a file
 * or row edited by hand is refused with the field that is wrong.
 */
import { VfioError } from '../base/errors.js';

export type StartMode = 'auto' | 'manual';

/**
 * One attribute write, in order. A list, not a map: mdevctl lets a name
 * repeat (vfio_ap's assign_adapter, say), and `--index` addresses entries.
 */
export interface MdevAttr {
  name: string;
  value: string;
}

/** What a configuration file holds. */
export interface MdevConfig {
  mdevType: string;
  start: StartMode;
  attrs: MdevAttr[];
}

/** A configuration bound to a device: mdevctl keys definitions by (parent, uuid). */
export interface MdevDefinition extends MdevConfig {
  uuid: string;
  parent: string;
}

/** mdevctl's JSON form of a configuration. */
export interface ConfigJson {
  mdev_type: string;
  start: StartMode;
  attrs: Array<Record<string, string>>;
}

const KNOWN_FIELDS = ['mdev_type', 'start', 'attrs'];

/**
 * Checks a parsed JSON value against the configuration shape. `source`
 * names where it came from (a file, a store row) and starts every error
 * sentence, followed by the field.
 */
export function parseConfig(value: unknown, source: string): MdevConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new VfioError('EINVAL', `${source}: expected a JSON object with mdev_type, start and attrs`);
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!KNOWN_FIELDS.includes(key)) {
      throw new VfioError('EINVAL', `${source}: field "${key}" is unknown (expected ${KNOWN_FIELDS.join(', ')})`);
    }
  }
  const mdevType = obj.mdev_type;
  if (typeof mdevType !== 'string' || mdevType === '') {
    throw new VfioError('EINVAL', `${source}: field "mdev_type" must be a non-empty string, not ${show(mdevType)}`);
  }
  return { mdevType, start: parseStart(obj.start, source), attrs: parseAttrs(obj.attrs, source) };
}

/** Parses JSON text and checks it as parseConfig does; invalid JSON names the source too. */
export function parseConfigText(text: string, source: string): MdevConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new VfioError('EINVAL', `${source}: invalid JSON: ${(err as Error).message}`);
  }
  return parseConfig(value, source);
}

function parseStart(value: unknown, source: string): StartMode {
  if (value === 'auto' || value === 'manual') return value;
  throw new VfioError('EINVAL', `${source}: field "start" must be "auto" or "manual", not ${show(value)}`);
}

/** `attrs` is optional; when present, an array of one-member objects with string values. */
function parseAttrs(value: unknown, source: string): MdevAttr[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    throw new VfioError('EINVAL', `${source}: field "attrs" must be an array of {"name": "value"} objects, not ${show(value)}`);
  }
  return value.map((entry: unknown, i) => {
    const where = `${source}: field "attrs[${i}]"`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new VfioError('EINVAL', `${where} must be an object like {"name": "value"}, not ${show(entry)}`);
    }
    const members = Object.entries(entry as Record<string, unknown>);
    if (members.length !== 1) {
      throw new VfioError('EINVAL', `${where} must have exactly one member, not ${members.length}`);
    }
    const [name, v] = members[0]!;
    if (name === '') throw new VfioError('EINVAL', `${where} has an empty attribute name`);
    if (typeof v !== 'string') {
      throw new VfioError('EINVAL', `${where}: the value of "${name}" must be a string, not ${show(v)}`);
    }
    return { name, value: v };
  });
}

/** mdevctl's JSON form. */
export function toConfigJson(config: MdevConfig): ConfigJson {
  return {
    mdev_type: config.mdevType,
    start: config.start,
    attrs: config.attrs.map((a) => ({ [a.name]: a.value })),
  };
}

/**
 * The attributes as the mdev bus takes them (one value per name). A name
 * given twice is refused rather than silently collapsed.
 */
export function attrsToRecord(attrs: readonly MdevAttr[], uuid: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of attrs) {
    if (Object.hasOwn(out, a.name)) {
      throw new VfioError('EINVAL', `device ${uuid}: attribute "${a.name}" is given twice; uvfio's drivers take each attribute once`);
    }
    out[a.name] = a.value;
  }
  return out;
}

/**
 * `modify --addattr NAME --value V [--index I]`: insert at I (0..length),
 * append without. Returns a new list.
 */
export function addAttr(attrs: readonly MdevAttr[], attr: MdevAttr, index: number | undefined): MdevAttr[] {
  const out = [...attrs];
  if (index === undefined) {
    out.push(attr);
  } else {
    if (index > out.length) throw badIndex(index, out.length);
    out.splice(index, 0, attr);
  }
  return out;
}

/** `modify --delattr [--index I]`: delete entry I, the last without. Returns a new list. */
export function deleteAttr(attrs: readonly MdevAttr[], index: number | undefined): MdevAttr[] {
  const out = [...attrs];
  if (out.length === 0) throw new VfioError('EINVAL', 'the device has no attribute to delete');
  if (index === undefined) {
    out.pop();
  } else {
    if (index >= out.length) throw badIndex(index, out.length - 1);
    out.splice(index, 1);
  }
  return out;
}

function badIndex(index: number, max: number): VfioError {
  return new VfioError('EINVAL', `attribute index ${index} is out of range (0 to ${max})`);
}

function show(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
