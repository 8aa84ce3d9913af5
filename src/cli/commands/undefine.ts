/** `uvfio undefine`: forget a definition (works without a daemon). */
import { given, requiredUuid, str, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const undefineCommand: Command = {
  name: 'undefine',
  summary: 'remove a definition (a running device keeps running)',
  help: `Usage: uvfio undefine -u UUID [-p PARENT] [--json]

Remove the definition of a device: of every parent that defines the UUID,
or of one. A running device keeps running. Works without a daemon.

  -u, --uuid UUID       the device
  -p, --parent PARENT   only its definition on this parent
      --json            print what was removed as JSON`,
  options: {
    uuid: { type: 'string', short: 'u' },
    parent: { type: 'string', short: 'p' },
    json: { type: 'boolean' },
  },
  async run(ctx, v) {
    const mode = outputMode(v);
    const result = await ctx.call('undefine', { uuid: requiredUuid(v, 'undefine'), ...given({ parent: str(v, 'parent') }) });
    if (mode === 'json') ctx.print(prettyJson(result));
  },
};
