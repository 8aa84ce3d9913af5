/**
 * The new daemon's half of a takeover (`uvfio daemon --takeover`; the
 * protocol: takeover-protocol.ts). Before asking the serving daemon to
 * freeze it makes the same devices (same UUIDs, types and attributes, on
 * the very BAR memory clients have mapped), not served; so the pause
 * clients see is only: freeze, each device's stream saved and loaded, the
 * sessions adopted, commit.
 *
 * Until the commit this process has changed nothing anyone sees: on
 * failure the caller exits at once, closing nothing by hand (closing an
 * adopted listener would unlink the socket file the old daemon still
 * serves on; unregistering a device would ring its clients' REQ eventfds).
 */
import { VfioError, toVfioError } from '../base/errors.js';
import type { MdevBus, MdevDevice } from '../mdev/index.js';
import { closeFds, MappedMemory } from '../native/index.js';
import type { TakeoverSeam } from './device-server.js';
import { HandoverFile } from './handover-file.js';
import type { Logger } from './log.js';
import { TakeoverChannel } from './takeover-channel.js';
import { TAKEOVER_PROTOCOL_VERSION, type Abort, type Hello, type InventoryDevice } from './takeover-protocol.js';

/**
 * Failures a test injects (env UVFIO_TAKEOVER_FAIL), each at one point:
 * `adopt` fails once the devices are adopted; `exit` ends the process
 * just before the commit, as a kill would; `hang` never commits.
 */
export type InjectedFailure = 'adopt' | 'exit' | 'hang';

/**
 * A takeover that did not commit: the daemon serving before serves on.
 * Whoever catches it exits without closing anything by hand (see the file's comment).
 */
export class TakeoverFailed extends VfioError {
  constructor(cause: VfioError) {
    super(cause.code, `takeover failed (${cause.code}): ${cause.message}`, { cause });
  }
}

export interface TakeOverOptions {
  /** RUNTIME_DIR/takeover.sock */
  path: string;
  bus: MdevBus;
  server: TakeoverSeam;
  log: Logger;
  /** How long the serving daemon may take to answer each step. */
  timeoutMs: number;
  inject?: InjectedFailure | undefined;
}

/** What was taken over, committed: devices loaded and adopted, still stopped and frozen until resume(). */
export interface TakenOver {
  fromPid: number;
  /** the control socket's listener */
  controlFd: number;
  /** the takeover socket's listener */
  takeoverFd: number;
  devices: MdevDevice[];
  /** Runs the devices and serves: the first reply a client gets after the takeover follows this. */
  resume(): Promise<void>;
  /** ms from the freeze asked to the commit answered */
  frozenMs: number;
  /** ms of it spent here loading and adopting */
  loadMs: number;
}

/**
 * Takes over from the daemon listening at `o.path`. `creating` is told the
 * UUIDs about to be created, so the bus's serve hook leaves them unserved.
 * Throws with the errno of what failed (the serving daemon's own when it
 * refused or called it off); nothing is committed then.
 */
export async function takeOver(o: TakeOverOptions, creating: Set<string>): Promise<TakenOver> {
  let channel: TakeoverChannel;
  try {
    channel = TakeoverChannel.connect(o.path);
  } catch (err) {
    const e = toVfioError(err);
    throw new VfioError(e.code, `no uvfio daemon to take over answers on ${o.path} (${e.message})`, { cause: err });
  }
  const files: HandoverFile[] = [];
  try {
    await channel.send({ op: 'hello', version: TAKEOVER_PROTOCOL_VERSION, pid: process.pid } satisfies Hello);
    const { message: inventory, fds } = await channel.expect('inventory', o.timeoutMs);
    const listeners = [fds[inventory.control]!, fds[inventory.takeover]!];
    const devices: MdevDevice[] = [];
    try {
      for (const d of inventory.devices) {
        creating.add(d.uuid);
        const mdev = await create(o.bus, d, fds);
        devices.push(mdev);
        const file = await HandoverFile.open(mdev.device);
        files.push(file);
        // A rehearsal on the device nobody uses yet: its own stream saved
        // and loaded back, so the code the pause runs is warm (a cold first
        // load cost ~10 ms a device).
        await file.load(await file.save());
      }
    } finally {
      closeFds(fds.filter((fd, i) => i !== inventory.control && i !== inventory.takeover && fd >= 0));
    }
    o.log.info('takeover: devices made, asking the serving daemon to freeze', { from: inventory.pid, devices: devices.length });
    const asked = Date.now();
    await channel.send({ op: 'freeze' });
    const { message: state, fds: stateFds } = await channel.expect('state', o.timeoutMs);
    const gotState = Date.now();
    await o.server.freeze();
    const byUuid = new Map(devices.map((m, i) => [m.uuid, i]));
    const left = new Set(stateFds.keys());
    try {
      for (const d of state.devices) {
        if (!byUuid.has(d.uuid)) throw new VfioError('EPROTO', `the serving daemon handed over ${d.uuid}, which was not in its inventory`);
        for (let k = d.fds[0]; k < d.fds[0] + d.fds[1]; k++) left.delete(k);
      }
      // Devices are independent: each is loaded and adopted beside the others.
      await Promise.all(
        state.devices.map(async (d) => {
          const i = byUuid.get(d.uuid)!;
          await files[i]!.load(d.stream);
          await o.server.adoptDevice(devices[i]!.device, d.serving, stateFds.slice(d.fds[0], d.fds[0] + d.fds[1]));
        }),
      );
      if (o.inject === 'adopt') throw new VfioError('EIO', 'a failure injected by UVFIO_TAKEOVER_FAIL=adopt');
    } finally {
      closeFds([...left].map((k) => stateFds[k]!));
    }
    if (o.inject === 'exit') process.exit(9);
    const committing = Date.now();
    // `hang`: no commit; what comes is the serving daemon giving up.
    if (o.inject !== 'hang') await channel.send({ op: 'commit' });
    await channel.expect('released', o.inject === 'hang' ? 3_600_000 : o.timeoutMs);
    const frozenMs = Date.now() - asked;
    const loadMs = committing - gotState;
    channel.close();
    return {
      fromPid: inventory.pid,
      controlFd: listeners[0]!,
      takeoverFd: listeners[1]!,
      devices,
      frozenMs,
      loadMs,
      resume: async () => {
        await Promise.all(files.map((f) => f.resume()));
        o.server.thaw();
        for (const f of files) await f.close();
      },
    };
  } catch (err) {
    const e = toVfioError(err);
    await channel.send({ op: 'abort', code: e.code, message: e.message } satisfies Abort).catch(() => {});
    channel.close();
    throw new VfioError(e.code, `${e.message}; the running daemon serves on`, { cause: err });
  }
}

/** The device `d` describes, made on the bus on the BAR memory handed over (which it takes), not served. */
async function create(bus: MdevBus, d: InventoryDevice, fds: number[]): Promise<MdevDevice> {
  const type = bus.parent(d.parent)?.type(d.type);
  if (type === undefined) throw new VfioError('ENOENT', `${d.uuid} cannot be taken over: this uvfio has no type ${d.type} of parent ${d.parent}`);
  const barMemory: Array<MappedMemory | undefined> = [];
  for (const b of d.bars) {
    const fd = fds[b.fd]!;
    fds[b.fd] = -1; // adopt() takes it, even when it throws
    barMemory[b.index] = MappedMemory.adopt(fd, b.size);
  }
  return bus.create(d.uuid, type, d.attrs, { barMemory });
}
