/** `uvfio screenshot`: the current screen of a display device (mdpy, mbochs) as a PNG file. */
import { resolve } from 'node:path';
import { VfioError } from '../../base/errors.js';
import { requiredUuid, str, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const screenshotCommand: Command = {
  name: 'screenshot',
  summary: 'write the screen of a display device to a PNG file',
  help: `Usage: uvfio screenshot -u UUID -o FILE.png [--json]

Write what the guest shows on a running mdpy or mbochs device to a PNG
file, as the guest programmed it (format, size, stride, offset). Fails
with a clear error while the guest has set no display mode yet.

  -u, --uuid UUID       the device
  -o, --output FILE     the PNG file to write
      --json            print the plane that was captured as JSON`,
  options: {
    uuid: { type: 'string', short: 'u' },
    output: { type: 'string', short: 'o' },
    json: { type: 'boolean' },
  },
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
