/**
 * The one line a failed command prints on stderr. A VfioError is the user's
 * mistake or the system's, said in its sentence; anything else is a bug of
 * uvfio's, reported with where it was thrown, still on one line: scripts
 * read stderr a line per failure.
 */
import { VfioError } from '../base/errors.js';

/** `uvfio: <sentence>`, newline included. */
export function errorLine(err: unknown): string {
  return `uvfio: ${oneLine(err instanceof VfioError ? err.message : internalError(err))}\n`;
}

function internalError(err: unknown): string {
  if (!(err instanceof Error)) return `internal error: ${String(err)}`;
  const at = /\n\s+at (.+)/.exec(err.stack ?? '')?.[1];
  return `internal error: ${err.name}: ${err.message}${at === undefined ? '' : ` (at ${at})`}`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
