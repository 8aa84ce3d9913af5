/** `uvfio screenshot`: the current screen of a display device (mdpy, mbochs) as a PNG file. */
import { resolve } from 'node:path';
import { VfioError } from '../../base/errors.js';
import { jsonOpt, requiredUuid, str, uuidOpt, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const screenshotCommand: Command = {
  name: 'screenshot',
  summary: 'write the screen of a display device to a PNG file',
  synopsis: ['screenshot -u UUID -o FILE.png [--json]'],
  description: `Write what the guest shows on a running mdpy or mbochs device to a PNG
file, as the guest programmed it (format, size, stride, offset). Fails
with a clear error while the guest has set no display mode yet.`,
  options: [
    uuidOpt('the device'),
    { name: 'output', short: 'o', value: 'FILE', help: 'the PNG file to write', complete: 'file' },
    jsonOpt('print the plane that was captured as JSON'),
  ],
  examples: [{ command: 'uvfio screenshot -u UUID -o screen.png', says: "save what the VM's display shows" }],
  async run(ctx, v) {
    const mode = outputMode(v);
    const uuid = requiredUuid(v, 'screenshot');
    const output = str(v, 'output');
    if (output === undefined) throw new VfioError('EINVAL', 'screenshot needs -o/--output FILE.png');
    const path = resolve(output);
    const { plane } = await ctx.call('screenshot', { uuid, path });
    if (mode === 'json') ctx.print(prettyJson({ uuid, path, ...plane }));
    else ctx.print(`${path}: ${plane.width}x${plane.height} ${plane.format}`);
  },
};
