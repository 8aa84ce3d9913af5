/** `uvfio migrate`: move a running device's state to the same device served by another daemon. */
import { resolve } from 'node:path';
import { VfioError } from '../../base/errors.js';
import { resolvePaths } from '../../daemon/paths.js';
import type { MdevInfo, ResultOf } from '../../daemon/protocol.js';
import { flag, jsonOpt, requiredUuid, str, uuidOpt, type Command, type Values } from '../args.js';
import { request } from '../client.js';
import type { CliContext } from '../context.js';
import { outputMode } from '../output-mode.js';
import { prettyJson } from '../output.js';

/** How long the source's clients get to let go of it after the move. */
const SOURCE_STOP_TIMEOUT_MS = 10_000;

export const migrateCommand: Command = {
  name: 'migrate',
  summary: "move a running device's state to another daemon",
  synopsis: ['migrate -u UUID --to DIR [--precopy-rounds N] [--keep-source] [--json]'],
  description: `Move the state of a running device (its registers, buffers, video memory:
whatever its driver migrates) to the daemon whose runtime directory is DIR,
by VFIO migration v2 over vfio-user. The daemon at --runtime-dir is the
source. On the destination, the device of the same UUID is used if it runs
(it must be of the same parent and type), or started as a transient device
like the source; the source's state replaces its own.

The device keeps running during PRE_COPY rounds (for a driver that has
them, mtty), then stops for the rest of the state; the destination loads
it and runs. Then the source is stopped, its clients asked to let go
(dropped after 10 s), unless --keep-source: it is left stopped in the
migration sense while a client holds it, or running again once none does.

If anything fails, the source runs on as before, a destination device
started for the move is removed again, and the error says which step
failed. A destination refusing the state (another type, another version)
answers with its errno.`,
  options: [
    uuidOpt('the device'),
    { name: 'to', value: 'DIR', help: 'the runtime directory of the destination daemon', complete: 'dir' },
    { name: 'precopy-rounds', value: 'N', help: 'PRE_COPY rounds while the device runs (default 1; none for drivers without PRE_COPY)' },
    { name: 'keep-source', help: 'do not stop the source device afterwards' },
    jsonOpt('print what was moved as JSON'),
  ],
  examples: [
    { command: 'uvfio migrate -u UUID --to /run/uvfio-new', says: 'move the device to the daemon of /run/uvfio-new' },
    { command: 'uvfio --runtime-dir /tmp/a migrate -u UUID --to /tmp/b --json', says: 'between two daemons of one user, as JSON' },
  ],
  async run(ctx, v) {
    const mode = outputMode(v);
    const uuid = requiredUuid(v, 'migrate');
    const to = str(v, 'to');
    if (to === undefined) throw new VfioError('EINVAL', 'migrate needs --to DIR, the runtime directory of the destination daemon');
    const destination = resolvePaths({ runtimeDir: resolve(to) }).controlSocket;
    if (destination === ctx.paths.controlSocket) throw new VfioError('EINVAL', `--to ${to} is the source daemon's own runtime directory`);
    const moved = await migrateDevice(ctx, uuid, destination, rounds(v), flag(v, 'keep-source'));
    if (mode === 'json') ctx.print(prettyJson({ uuid, to: resolve(to), ...moved }));
    else
      ctx.print(
        `${uuid}: moved to ${resolve(to)}: ${bytes(moved.precopyBytes + moved.stopCopyBytes)} (${bytes(moved.stopCopyBytes)} after it stopped, stopped ${moved.downtimeMs.toFixed(1)} ms)${moved.sourceStopped ? '' : '; the source was kept'}\n`,
      );
  },
};

type Moved = ResultOf<'migrate'> & { socket: string; destinationStarted: boolean; sourceStopped: boolean };

async function migrateDevice(
  ctx: CliContext,
  uuid: string,
  destination: string,
  precopyRounds: number | undefined,
  keepSource: boolean,
): Promise<Moved> {
  const source = await running(ctx.call('list', { uuid }), uuid, 'the source');
  if (source === undefined) throw new VfioError('ENODEV', `${uuid} is not running on the source daemon`);
  let target = await running(request(destination, 'list', { uuid }), uuid, 'the destination');
  let destinationStarted = false;
  if (target === undefined) {
    const config = { mdev_type: source.mdevType, start: 'manual' as const, attrs: source.attrs.map((a) => ({ [a.name]: a.value })) };
    target = (await request(destination, 'start', { uuid, parent: source.parent, config })).device;
    destinationStarted = true;
  } else if (target.parent !== source.parent || target.mdevType !== source.mdevType) {
    throw new VfioError(
      'EINVAL',
      `${uuid} runs on the destination as ${target.parent}/${target.mdevType}, on the source as ${source.parent}/${source.mdevType}`,
    );
  }
  if (target.socket === undefined) throw new VfioError('ENODEV', `${uuid} is not served on the destination`);
  let stats: ResultOf<'migrate'>;
  try {
    stats = await ctx.call('migrate', { uuid, socket: target.socket, ...(precopyRounds === undefined ? {} : { precopyRounds }) });
  } catch (err) {
    if (destinationStarted) await request(destination, 'stop', { uuid, force: true }).catch(() => undefined);
    throw err;
  }
  if (!keepSource) await ctx.call('stop', { uuid, timeoutMs: SOURCE_STOP_TIMEOUT_MS });
  return { ...stats, socket: target.socket, destinationStarted, sourceStopped: !keepSource };
}

/** The running device `uuid` from a list answer, or undefined. */
async function running(answer: Promise<ResultOf<'list'>>, uuid: string, where: string): Promise<MdevInfo | undefined> {
  try {
    return (await answer).devices.find((d) => d.uuid === uuid && d.active);
  } catch (err) {
    if (err instanceof VfioError) throw new VfioError(err.code, `${where} daemon: ${err.message}`, { cause: err });
    throw err;
  }
}

function rounds(v: Values): number | undefined {
  const s = str(v, 'precopy-rounds');
  if (s === undefined) return undefined;
  if (!/^\d{1,4}$/.test(s)) throw new VfioError('EINVAL', `--precopy-rounds: ${JSON.stringify(s)} is not a number from 0 to 9999`);
  return Number(s);
}

function bytes(n: number): string {
  return n < 1024 ? `${n} bytes` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}
