/** `uvfio stop`: remove a running device once its clients let go. */
import { requiredUuid, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, prettyJson } from '../output.js';

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop a running device',
  help: `Usage: uvfio stop -u UUID [--json]

Stop a running device. Connected clients are asked to let go (QEMU
unplugs the device from the guest), and the command returns once they
have. Its definition, if any, stays.

  -u, --uuid UUID       the device
      --json            print the stopped device as JSON`,
  options: {
    uuid: { type: 'string', short: 'u' },
    json: { type: 'boolean' },
  },
  async run(ctx, v) {
    const mode = outputMode(v);
    const { device } = await ctx.call('stop', { uuid: requiredUuid(v, 'stop') });
    if (mode === 'json') ctx.print(prettyJson(deviceJson(device)));
  },
};
