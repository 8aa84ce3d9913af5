/** `uvfio replay`: a recorded trace run again against a fresh device; the first reply that differs. */
import { readFileSync } from 'node:fs';
import { VfioError } from '../../base/errors.js';
import { parseTrace, replayTrace, type ReplayResult } from '../../daemon/replay.js';
import { jsonOpt, str, type Command } from '../args.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

export const replayCommand: Command = {
  name: 'replay',
  summary: 'run a recorded trace against a fresh device and report the first reply that differs',
  synopsis: ['replay FILE [--type TYPE] [--json]'],
  description: `Send the requests of a trace recorded with "uvfio trace --json", in
order, each client over a socket of its own, to a fresh device of the
type it was recorded on (made in this process: no daemon needed), and
compare every reply (its errno and bytes) with the recorded one. Exits 0
with "N replies, no difference", or 1 naming the first message whose
reply differs: its index, command, register, expected and got.

Replay makes its own file descriptors: an eventfd for each interrupt a
client handed over, fresh zeroed memory for each DMA mapping. So what a
device reads from the guest's memory is not replayed, nor is when it
raised interrupts: those are counted and reported, not compared.
--type TYPE replays against another type (mtty-2 for a trace of an
mtty-1, say).`,
  options: [
    { name: 'type', short: 't', value: 'TYPE', help: 'replay against a device of this type instead', complete: 'type' },
    jsonOpt('print the outcome as JSON'),
  ],
  operand: { name: 'FILE', complete: 'file' },
  examples: [
    { command: 'uvfio replay probe.trace', says: 'does the device still answer the driver as it did?' },
    { command: 'uvfio replay probe.trace --type mtty-2', says: 'the same driver session against a two-port card' },
  ],
  async run(ctx, v, operands) {
    const mode = outputMode(v);
    const [file, ...extra] = operands;
    if (file === undefined) throw new VfioError('EINVAL', 'replay needs the trace FILE (recorded with "uvfio trace --json -o FILE")');
    if (extra.length > 0) throw new VfioError('EINVAL', `replay takes one FILE, not also ${extra.join(' ')}`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new VfioError('ENOENT', `cannot read ${file}: ${(err as Error).message}`);
    }
    const { header, lines } = parseTrace(text, file);
    const result = await replayTrace(header, lines, str(v, 'type'));
    if (mode === 'json') ctx.print(prettyJson(result));
    else ctx.print(resultText(result));
    if (result.difference !== undefined) ctx.fail([`replay ${file}: message ${result.difference.index} (${result.difference.cmd}) differs`]);
  },
};

function resultText(r: ReplayResult): string {
  const out: string[] = [];
  for (const n of r.notes) out.push(`note: ${n}`);
  const d = r.difference;
  if (d === undefined) {
    out.push(
      `${r.replies} replies, no difference (${r.messages} messages to ${r.device}; interrupts: ${r.interrupts.recorded} recorded, ${r.interrupts.raised} raised)`,
    );
  } else {
    out.push(`message ${d.index} (line ${d.line}), client ${d.client}: ${d.cmd}${d.register === undefined ? '' : ` ${d.register}`}`);
    out.push(`  expected: ${d.expected}`);
    out.push(`  got:      ${d.got}`);
    out.push(`${r.replies} replies matched before it`);
  }
  return `${out.join('\n')}\n`;
}
