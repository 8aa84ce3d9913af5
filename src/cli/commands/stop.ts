/** `uvfio stop`: remove a running device once its clients let go. */
import { jsonOpt, requiredUuid, uuidOpt, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, prettyJson } from '../output.js';

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop a running device',
  synopsis: ['stop -u UUID [--json]'],
  description: `Stop a running device. Connected clients are asked to let go (QEMU
unplugs the device from the guest), and the command returns once they
have. Its definition, if any, stays.`,
  options: [uuidOpt('the device'), jsonOpt('print the stopped device as JSON')],
  examples: [{ command: 'uvfio stop -u 6512381e-1a36-4a79-a95b-b13927dc91f4', says: 'unplug the device from its VM and remove it' }],
  async run(ctx, v) {
    const mode = outputMode(v);
    const { device } = await ctx.call('stop', { uuid: requiredUuid(v, 'stop') });
    if (mode === 'json') ctx.print(prettyJson(deviceJson(device)));
  },
};
