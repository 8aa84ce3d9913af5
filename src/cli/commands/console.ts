/** `uvfio console`: where the daemon's web console is, with its access token. */
import { jsonOpt, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const consoleCommand: Command = {
  name: 'console',
  summary: 'print the URL of the web console (daemon started with --http)',
  synopsis: ['console [--json]'],
  description: `Print the URL of the daemon's web console, its access token included: open
it in a browser to see every device and the live screen of each display
device, and to start, stop, define and undefine devices. The token is new
at each daemon start and guards every request; whoever has the URL has
the console, so share it as you would the control socket.`,
  options: [jsonOpt('print the URL and the listening address as JSON')],
  examples: [{ command: 'uvfio console', says: 'the URL to open, e.g. http://127.0.0.1:8080/?token=TOKEN' }],
  async run(ctx, v) {
    const mode = outputMode(v);
    const info = await ctx.call('console', {});
    ctx.print(mode === 'json' ? prettyJson(info) : `${info.url}\n`);
  },
};
