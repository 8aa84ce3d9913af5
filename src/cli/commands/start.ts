/** `uvfio start`: start a defined device, or a transient one. */
import type { Command } from '../args.js';
import { DEVICE_SPEC_OPTIONS, deviceSpecArgs, printDefinedOrStarted } from '../device-spec.js';

export const startCommand: Command = {
  name: 'start',
  summary: 'start a defined device, or a transient one',
  help: `Usage: uvfio start -u UUID [-p PARENT]                  (a defined device)
       uvfio start [-u UUID] -p PARENT -t TYPE           (a transient device)
       uvfio start [-u UUID] -p PARENT --jsonfile FILE   (a transient device from a file)

Start a device and serve it on its own socket (see "uvfio list"). A UUID
that is defined starts that definition; otherwise --parent and --type (or
--jsonfile) describe a transient device, which no restart brings back.
Without --uuid one is generated and printed.

  -u, --uuid UUID       the device's UUID
  -p, --parent PARENT   its parent (needed too when several parents define the UUID)
  -t, --type TYPE       its type
      --jsonfile FILE   type and attributes from an mdevctl JSON file
      --json            print the device, with its socket, as JSON`,
  options: DEVICE_SPEC_OPTIONS,
  async run(ctx, v) {
    printDefinedOrStarted(ctx, v, await ctx.call('start', deviceSpecArgs(v)));
  },
};
