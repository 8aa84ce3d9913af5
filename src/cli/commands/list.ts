/** `uvfio list`: running devices, or with --defined the definitions. */
import { given, flag, str, uuidOption, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, devicesDumpJson, devicesTable, prettyJson } from '../output.js';

export const listCommand: Command = {
  name: 'list',
  summary: 'list running devices (with --defined: definitions)',
  help: `Usage: uvfio list [-d] [-u UUID] [-p PARENT] [-v] [--dumpjson | --json]

List running devices with their sockets, or with --defined every defined
device whether running or not. --defined works without a daemon.

  -d, --defined         list definitions instead of running devices
  -u, --uuid UUID       only this device
  -p, --parent PARENT   only devices of this parent
  -v, --verbose         also print attributes, and the QEMU option of running devices
      --dumpjson        mdevctl's JSON shape (one device's configuration when -u selects one)
      --json            uvfio's flat JSON, with each running device's socket`,
  options: {
    defined: { type: 'boolean', short: 'd' },
    uuid: { type: 'string', short: 'u' },
    parent: { type: 'string', short: 'p' },
    verbose: { type: 'boolean', short: 'v' },
    dumpjson: { type: 'boolean' },
    json: { type: 'boolean' },
  },
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
