/** `uvfio types`: the types each parent offers, with how many more instances fit. */
import { given, jsonOpt, parentOpt, str, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson, typesDumpJson, typesJson, typesTable } from '../output.js';

export const typesCommand: Command = {
  name: 'types',
  summary: 'list the mdev types of each parent and their available instances',
  synopsis: ['types [-p PARENT] [--dumpjson | --json]'],
  description: `List the mediated device types of every parent (or of one), with the
number of instances that can still be created.`,
  options: [parentOpt('only this parent'), { name: 'dumpjson', help: "mdevctl's JSON shape" }, jsonOpt("uvfio's flat JSON")],
  examples: [{ command: 'uvfio types -p mtty', says: "the serial card's types and how many more of each fit" }],
  async run(ctx, v) {
    const mode = outputMode(v);
    const { types } = await ctx.call('types', given({ parent: str(v, 'parent') }));
    if (mode === 'dumpjson') ctx.print(prettyJson(typesDumpJson(types)));
    else if (mode === 'json') ctx.print(prettyJson(typesJson(types)));
    else ctx.print(typesTable(types));
  },
};
