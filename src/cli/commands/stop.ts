/** `uvfio stop`: remove a running device once its clients let go, or drop them. */
import { VfioError } from '../../base/errors.js';
import { describeClient } from '../../daemon/describe-client.js';
import type { StopEvent } from '../../daemon/protocol.js';
import { flag, given, jsonOpt, requiredUuid, str, uuidOpt, type Command, type Values } from '../args.js';
import type { CliContext } from '../context.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, prettyJson } from '../output.js';

export const stopCommand: Command = {
  name: 'stop',
  summary: 'stop a running device',
  synopsis: ['stop -u UUID [--timeout S | --force] [--json]'],
  description: `Stop a running device. Connected clients are asked to let go (the REQ
interrupt: QEMU then unplugs the device from the guest, if its machine can
hot-unplug it), and the command returns once they have. While it waits it
says who holds the device (pid and command of each client) and whether
they were asked, after a second and then every ten seconds.

QEMU's vfio-user client may never let go on its own: --timeout S drops the
clients still connected after S seconds, with a warning naming them, and
--force drops them at once. Either way the device is removed and the
command exits 0. A guest whose device is dropped sees it stop answering.
Its definition, if any, stays.`,
  options: [
    uuidOpt('the device'),
    { name: 'timeout', value: 'S', help: 'wait at most S seconds for the clients, then drop them' },
    { name: 'force', short: 'f', help: 'drop the clients at once' },
    jsonOpt('print the stopped device as JSON'),
  ],
  examples: [
    { command: 'uvfio stop -u 6512381e-1a36-4a79-a95b-b13927dc91f4', says: 'unplug the device from its VM and remove it' },
    { command: 'uvfio stop -u UUID --timeout 30', says: 'the same, but drop a VM that has not let go after 30 s' },
    { command: 'uvfio stop -u UUID --force', says: 'remove it now, whoever holds it' },
  ],
  async run(ctx, v) {
    const mode = outputMode(v);
    const uuid = requiredUuid(v, 'stop');
    const args = { uuid, ...given({ timeoutMs: timeoutOption(v), force: flag(v, 'force') }) };
    const { device } = await ctx.call('stop', args, (e) => tell(ctx, uuid, e));
    if (mode === 'json') ctx.print(prettyJson(deviceJson(device)));
  },
};

/** `--timeout S` in ms: S a non-negative number of seconds. */
function timeoutOption(v: Values): number | undefined {
  const s = str(v, 'timeout');
  if (s === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(s) || !Number.isFinite(Number(s))) {
    throw new VfioError('EINVAL', `--timeout: ${JSON.stringify(s)} is not a number of seconds`);
  }
  return Math.round(Number(s) * 1000);
}

/** One line per client on stderr: who still holds the device, or who is dropped. */
function tell(ctx: CliContext, uuid: string, e: StopEvent): void {
  const waited = seconds(e.waitedMs);
  if (e.event === 'waiting') {
    for (const c of e.clients) {
      const asked = c.asked ? 'asked to let go (REQ interrupt)' : 'not asked: it set up no REQ interrupt';
      ctx.say(`stop ${uuid}: held for ${waited} by ${describeClient(c)}, ${asked}; waiting (--timeout S or --force drops it)`);
    }
    return;
  }
  for (const c of e.clients) {
    if (e.reason === 'force') ctx.say(`stop ${uuid}: --force: dropping ${describeClient(c)}`);
    else ctx.say(`warning: stop ${uuid}: ${describeClient(c)} did not let go within ${waited}: dropping it`);
  }
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
