/** `uvfio trace`: strace for a device, every message of every client as it happens. */
import { closeSync, openSync, writeSync } from 'node:fs';
import { VfioError } from '../../base/errors.js';
import { flag, jsonOpt, requiredUuid, str, uuidOpt, type Command } from '../args.js';
import { traceHeaderLine, traceLine } from '../trace-format.js';

export const traceCommand: Command = {
  name: 'trace',
  summary: 'show, live, every message the clients of a device send it',
  synopsis: ['trace -u UUID [--json] [-o FILE]'],
  description: `Print every message of every client of a running device as it is served:
the command as the vfio-user spec spells it (REGION_READ, DEVICE_SET_IRQS,
...), its decoded fields, the register it touched where the driver names
it (mtty: port0 LCR, mbochs: dispi XRES, config space: COMMAND, BAR0,
MSI FLAGS), the reply's errno and how long the daemon took; clients
connecting and going; interrupts the device raised. It runs until the
device stops or Ctrl-C.

With --json each event is one JSON object per line, after a first line
naming the device and its type; such a file is what "uvfio replay" runs
again. It carries every request's and reply's bytes (base64; those over
64 KiB by size and SHA-256 only).

The daemon holds at most 4 MiB of lines a slow reader has not taken;
past that it drops events and then says how many, in a "dropped" line.
Nothing is recorded, and nothing costs, while nobody traces.`,
  options: [
    uuidOpt('the device'),
    jsonOpt('one JSON object per line, as "uvfio replay" reads them'),
    { name: 'output', short: 'o', value: 'FILE', help: 'write the lines to FILE instead of standard output', complete: 'file' },
  ],
  examples: [
    { command: 'uvfio trace -u UUID', says: 'watch what the guest driver does to the device' },
    { command: 'uvfio trace -u UUID --json -o probe.trace', says: 'record it for "uvfio replay probe.trace"' },
  ],
  async run(ctx, v) {
    const uuid = requiredUuid(v, 'trace');
    const json = flag(v, 'json');
    const output = str(v, 'output');
    let fd = 1;
    if (output !== undefined) {
      try {
        fd = openSync(output, 'w', 0o600);
      } catch (err) {
        throw new VfioError('EACCES', `cannot write ${output}: ${(err as Error).message}`);
      }
    }
    let events = 0;
    let dropped = 0;
    const summary = (reason: string) => ctx.say(`trace ${uuid}: ${events} events${dropped > 0 ? `, ${dropped} dropped` : ''}; ${reason}`);
    const write = (line: string) => {
      try {
        writeSync(fd, `${line}\n`);
      } catch (err) {
        // `uvfio trace | head`: the reader has what it wanted.
        if ((err as { code?: string }).code !== 'EPIPE') throw err;
        summary('the output was closed');
        process.exit(0);
      }
    };
    // Ctrl-C is the usual end: what was written stays, and says so.
    const interrupted = () => {
      summary('interrupted');
      process.exit(0);
    };
    process.once('SIGINT', interrupted);
    try {
      const result = await ctx.call('trace', { uuid }, (event) => {
        if (event.type === 'trace') {
          if (json) write(JSON.stringify(event));
          if (!json || output !== undefined) ctx.say(traceHeaderLine(event));
          return;
        }
        if (event.type === 'dropped') dropped += event.count;
        else events++;
        write(json ? JSON.stringify(event) : traceLine(event));
      });
      dropped = result.dropped;
      summary(result.reason);
    } finally {
      process.off('SIGINT', interrupted);
      if (fd !== 1) closeSync(fd);
    }
  },
};
