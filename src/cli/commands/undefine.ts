/** `uvfio undefine`: forget a definition (works without a daemon). */
import { given, jsonOpt, parentOpt, requiredUuid, str, uuidOpt, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const undefineCommand: Command = {
  name: 'undefine',
  summary: 'remove a definition (a running device keeps running)',
  synopsis: ['undefine -u UUID [-p PARENT] [--json]'],
  description: `Remove the definition of a device: of every parent that defines the UUID,
or of one. A running device keeps running. Works without a daemon.`,
  options: [uuidOpt('the device'), parentOpt('only its definition on this parent'), jsonOpt('print what was removed as JSON')],
  examples: [{ command: 'uvfio undefine -u UUID', says: 'forget the device; the daemon no longer starts it' }],
  async run(ctx, v) {
    const mode = outputMode(v);
    const result = await ctx.call('undefine', { uuid: requiredUuid(v, 'undefine'), ...given({ parent: str(v, 'parent') }) });
    if (mode === 'json') ctx.print(prettyJson(result));
  },
};
