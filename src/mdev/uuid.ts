/**
 * Mediated devices are named by UUID. uvfio keeps the canonical form only:
 * 8-4-4-4-12 lowercase hex, so one device has exactly one name everywhere
 * (the core's registry, socket paths, the sysfs view).
 */
import { VfioError } from '../base/errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for a canonical (lowercase) UUID. */
export function isCanonicalUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/**
 * The canonical form of a UUID given in either case; EINVAL for anything
 * else (braces, missing dashes, surrounding spaces, wrong length).
 */
export function normalizeUuid(value: unknown): string {
  if (typeof value === 'string') {
    const lower = value.toLowerCase();
    if (UUID_RE.test(lower)) return lower;
  }
  throw new VfioError('EINVAL', `${JSON.stringify(value)} is not a UUID (8-4-4-4-12 hex digits)`);
}
