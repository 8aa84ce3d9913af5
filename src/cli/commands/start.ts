/** `uvfio start`: start a defined device, or a transient one. */
import type { Command } from '../args.js';
import { deviceSpecArgs, deviceSpecOptions, printDefinedOrStarted } from '../device-spec.js';

export const startCommand: Command = {
  name: 'start',
  summary: 'start a defined device, or a transient one',
  synopsis: [
    'start -u UUID [-p PARENT]                  (a defined device)',
    'start [-u UUID] -p PARENT -t TYPE [--addattr NAME --value VALUE]   (a transient device)',
    'start [-u UUID] -p PARENT --jsonfile FILE   (a transient device from a file)',
  ],
  description: `Start a device and serve it on its own socket (see "uvfio list"). A UUID
that is defined starts that definition; otherwise --parent and --type (or
--jsonfile) describe a transient device, which no restart brings back.
Without --uuid one is generated and printed.`,
  options: deviceSpecOptions({
    parent: 'its parent (needed too when several parents define the UUID)',
    jsonfile: 'type and attributes from an mdevctl JSON file',
    json: 'print the device, with its socket, as JSON',
  }),
  examples: [
    { command: 'uvfio start -p mtty -t mtty-1', says: 'a transient one-port serial card; prints its new UUID' },
    { command: 'uvfio start -u UUID', says: 'start a defined device' },
    {
      command: 'uvfio start -p virtio-blk -t virtio-blk-ro --addattr path --value /srv/disk.img',
      says: 'a transient read-only disk serving an image',
    },
  ],
  async run(ctx, v) {
    printDefinedOrStarted(ctx, v, await ctx.call('start', deviceSpecArgs(v)));
  },
};
