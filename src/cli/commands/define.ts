/** `uvfio define`: store a definition (works without a daemon). */
import { given, flag, type Command } from '../args.js';
import { DEVICE_SPEC_OPTIONS, deviceSpecArgs, printDefinedOrStarted } from '../device-spec.js';

export const defineCommand: Command = {
  name: 'define',
  summary: 'define a persistent device',
  help: `Usage: uvfio define [-u UUID] -p PARENT (-t TYPE [-a] | --jsonfile FILE) [--json]
       uvfio define -u UUID                     (a running device, as it runs)

Store a device definition. Without --uuid one is generated and printed.
A running device's UUID alone defines it with its parent, type and
attributes. Running devices are not affected. Works without a daemon.

  -u, --uuid UUID       the device's UUID
  -p, --parent PARENT   its parent (see "uvfio types")
  -t, --type TYPE       its type
  -a, --auto            start it whenever the daemon starts
      --jsonfile FILE   type, start mode and attributes from an mdevctl JSON file
      --json            print the definition as JSON`,
  options: {
    ...DEVICE_SPEC_OPTIONS,
    auto: { type: 'boolean', short: 'a' },
  },
  async run(ctx, v) {
    const result = await ctx.call('define', { ...deviceSpecArgs(v), ...given({ auto: flag(v, 'auto') }) });
    printDefinedOrStarted(ctx, v, result);
  },
};
