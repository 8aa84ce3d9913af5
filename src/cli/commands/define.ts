/** `uvfio define`: store a definition (works without a daemon). */
import { given, flag, type Command } from '../args.js';
import { deviceSpecArgs, deviceSpecOptions, printDefinedOrStarted } from '../device-spec.js';

export const defineCommand: Command = {
  name: 'define',
  summary: 'define a persistent device',
  synopsis: [
    'define [-u UUID] -p PARENT (-t TYPE [-a] [--addattr NAME --value VALUE] | --jsonfile FILE) [--json]',
    'define -u UUID                     (a running device, as it runs)',
  ],
  description: `Store a device definition. Without --uuid one is generated and printed.
A running device's UUID alone defines it with its parent, type and
attributes. Running devices are not affected. Works without a daemon.`,
  options: [
    ...deviceSpecOptions({
      parent: 'its parent (see "uvfio types")',
      jsonfile: 'type, start mode and attributes from an mdevctl JSON file',
      json: 'print the definition as JSON',
    }),
    { name: 'auto', short: 'a', help: 'start it whenever the daemon starts' },
  ],
  examples: [
    { command: 'uvfio define -p mtty -t mtty-2 --auto', says: 'a persistent two-port card the daemon starts at every start; prints its UUID' },
    { command: 'uvfio define -p mtty --jsonfile dev.json', says: 'a new device from an mdevctl configuration file' },
    {
      command: 'uvfio define -p virtio-blk -t virtio-blk-rw --addattr path --value /srv/disk.img',
      says: 'a disk serving a raw image; more attributes with modify --addattr',
    },
  ],
  async run(ctx, v) {
    const result = await ctx.call('define', { ...deviceSpecArgs(v), ...given({ auto: flag(v, 'auto') }) });
    printDefinedOrStarted(ctx, v, result);
  },
};
