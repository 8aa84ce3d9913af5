/**
 * The daemon's directories must be its own: a runtime directory under /tmp
 * that someone else created first could hand them our sockets.
 */
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { VfioError, toVfioError } from '../base/errors.js';

/** Creates `dir` (and its parents) with mode 0700, or checks an existing one is a directory we own; tightens its mode. */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw describe(err, dir);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new VfioError('EINVAL', `${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new VfioError('EPERM', `${dir} belongs to uid ${st.uid}, not to us (uid ${uid}); choose another directory`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, st.mode & 0o700);
}

function describe(err: unknown, dir: string): VfioError {
  const e = toVfioError(err);
  return new VfioError(e.code, `cannot create directory ${dir}: ${(err as Error).message}`, { cause: err });
}
