/**
 * The daemon's half of `uvfio migrate`: moves a running device's migration
 * state into a vfio-user device served elsewhere (another uvfio daemon's
 * device of the same type, or any vfio-user server that speaks migration
 * v2). The source is read in process, through a device file of its own
 * (bound to an empty iommufd context: it maps no client memory), so a
 * client attached to the device keeps it meanwhile; the destination is
 * reached as any client would, over its socket.
 *
 * The sequence is the client library's migrate(): the destination to
 * RESUMING, PRE_COPY rounds while the source runs (mtty has them), the
 * source to STOP_COPY, the destination loads and runs, the source is left
 * in STOP. Anything failing takes the source back to RUNNING. When this
 * file is the device's last, closing it returns the device to RUNNING as
 * every last close does: the command line removes the source afterwards.
 */
import { isAbsolute } from 'node:path';
import { VfioError } from '../base/errors.js';
import type { VfioCore } from '../core/vfio-core.js';
import { IommufdContext } from '../iommufd/context.js';
import { clientPeer, filePeer, migrate, type MigrationStats } from '../vfio-user/client/migration.js';
import { VfioUserClient } from '../vfio-user/client.js';

/** How long the destination may take to answer one message. */
const REPLY_TIMEOUT_MS = 30_000;

/** What `migrate` is asked: the device, where its state goes, how. */
export interface MigrateRequest {
  uuid: string;
  /** the destination device's vfio-user socket (absolute) */
  socket: string;
  /** PRE_COPY rounds (default 1; ignored by a device without PRE_COPY) */
  precopyRounds?: number;
}

/** Moves the state of `core`'s device `uuid` into the device at `socket`. */
export async function migrateDevice(core: VfioCore, r: MigrateRequest): Promise<MigrationStats> {
  if (!isAbsolute(r.socket)) throw new VfioError('EINVAL', `the destination socket must be an absolute path, not ${r.socket}`);
  const device = core.device(r.uuid);
  if (!device || device.state !== 'registered') throw new VfioError('ENODEV', `${r.uuid} is not running`);
  const file = device.openFile();
  const ctx = new IommufdContext({ maxMappings: 0 });
  let client: VfioUserClient | null = null;
  try {
    await file.bindIommufd(ctx);
    client = await VfioUserClient.connect(r.socket, { timeoutMs: REPLY_TIMEOUT_MS }).catch((err: unknown) => {
      const e = err instanceof VfioError ? err : new VfioError('ECONNREFUSED', String(err));
      throw new VfioError(e.code, `cannot reach the destination at ${r.socket}: ${e.message}`, { cause: err });
    });
    return await migrate(filePeer(file), clientPeer(client), { precopyRounds: r.precopyRounds ?? 1 });
  } finally {
    client?.close();
    await file.close();
    ctx.destroy();
  }
}
