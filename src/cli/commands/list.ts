/** `uvfio list`: running devices, or with --defined the definitions. */
import { given, flag, jsonOpt, parentOpt, str, uuidOpt, uuidOption, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, devicesDumpJson, devicesTable, prettyJson } from '../output.js';

export const listCommand: Command = {
  name: 'list',
  summary: 'list running devices (with --defined: definitions)',
  synopsis: ['list [-d] [-u UUID] [-p PARENT] [-v] [--dumpjson | --json]'],
  description: `List running devices with their sockets, or with --defined every defined
device whether running or not. --defined works without a daemon.`,
  options: [
    { name: 'defined', short: 'd', help: 'list definitions instead of running devices' },
    uuidOpt('only this device'),
    parentOpt('only devices of this parent'),
    { name: 'verbose', short: 'v', help: 'also print attributes, and the QEMU option of running devices' },
    { name: 'dumpjson', help: "mdevctl's JSON shape (one device's configuration when -u selects one)" },
    jsonOpt("uvfio's flat JSON, with each running device's socket"),
  ],
  examples: [
    { command: 'uvfio list -v', says: 'running devices, their attributes and the QEMU option of each' },
    { command: 'uvfio list -d -u UUID --dumpjson > dev.json', says: "one device's configuration file, as mdevctl writes it" },
  ],
  async run(ctx, v) {
    const mode = outputMode(v);
    const uuid = uuidOption(v);
    const isDefined = flag(v, 'defined');
    const { devices, problems } = await ctx.call('list', given({ defined: isDefined, uuid, parent: str(v, 'parent') }));
    if (mode === 'dumpjson') ctx.print(prettyJson(devicesDumpJson(devices, uuid !== undefined)));
    else if (mode === 'json') ctx.print(prettyJson(devices.map(deviceJson)));
    else ctx.print(devicesTable(devices, isDefined, flag(v, 'verbose')));
    // The sound definitions are listed; each damaged one is a line of its own, and the status says so.
    if (problems.length > 0) ctx.fail(problems);
  },
};
