/** Which of the three output forms a command was asked for (see output.ts). */
import { VfioError } from '../base/errors.js';
import { flag, type Values } from './args.js';

export type OutputMode = 'text' | 'json' | 'dumpjson';

/** The form asked for by --json / --dumpjson (text when neither); EINVAL for both. */
export function outputMode(values: Values): OutputMode {
  const json = flag(values, 'json');
  const dump = flag(values, 'dumpjson');
  if (json && dump) throw new VfioError('EINVAL', '--json and --dumpjson cannot be combined: pick one');
  return dump ? 'dumpjson' : json ? 'json' : 'text';
}
