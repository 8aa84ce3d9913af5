/** `uvfio types`: the types each parent offers, with how many more instances fit. */
import { given, str, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson, typesDumpJson, typesJson, typesTable } from '../output.js';

export const typesCommand: Command = {
  name: 'types',
  summary: 'list the mdev types of each parent and their available instances',
  help: `Usage: uvfio types [-p PARENT] [--dumpjson | --json]

List the mediated device types of every parent (or of one), with the
number of instances that can still be created.

  -p, --parent PARENT   only this parent
      --dumpjson        mdevctl's JSON shape
      --json            uvfio's flat JSON`,
  options: {
    parent: { type: 'string', short: 'p' },
    dumpjson: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run(ctx, v) {
    const mode = outputMode(v);
    const { types } = await ctx.call('types', given({ parent: str(v, 'parent') }));
    if (mode === 'dumpjson') ctx.print(prettyJson(typesDumpJson(types)));
    else if (mode === 'json') ctx.print(prettyJson(typesJson(types)));
    else ctx.print(typesTable(types));
  },
};
