/**
 * Migration v2 from the client's side: typed helpers over a session's
 * DEVICE_FEATURE and MIG_DATA messages, and `migrate(src, dst)`, which moves
 * one device's state into another, as a VMM does during a live migration:
 *
 * 1. the destination goes to RESUMING (STOP first, by the allowed arcs);
 * 2. when the source has PRE_COPY and rounds are asked for: the source goes
 *    to PRE_COPY while it runs, and each round reads what it has now (until
 *    a short read) into the destination;
 * 3. the source goes to STOP_COPY (it stops) and the rest of its stream
 *    goes over, to its end (a short read);
 * 4. the destination goes to STOP (it loads the stream, or refuses it) and
 *    then to RUNNING; the source is left in STOP.
 *
 * The stream's bytes go over in order and unchanged: what they mean is the
 * devices' business. If anything fails, the source is taken back to
 * RUNNING (as a VMM does when a migration is cancelled) and the error
 * names the step; the destination is left where it was (a reset, or its
 * last close, returns it to RUNNING).
 *
 * A MigrationPeer is anything that speaks the five operations: a vfio-user
 * session (clientPeer), or an in-process device file (the daemon's).
 */
import { VfioError } from '../../base/errors.js';
import { Feature, MigrationFlags, MigState, type MigStateValue } from '../../base/uapi.js';
import { bitmapBytes } from '../../iommufd/dirty-log.js';
import type { DeviceFile } from '../../core/device-file.js';
import type { VfioUserClient } from '../client.js';
import {
  decodeMigrationFlags,
  decodeMigState,
  encodeDmaLoggingControl,
  encodeDmaLoggingReport,
  encodeMigState,
  FeatureSize,
  type DmaLoggingControl,
} from '../feature-data.js';

/** One side of a migration. */
export interface MigrationPeer {
  /** MigrationFlags of the device (ENOTTY when it cannot migrate). */
  flags(): Promise<number>;
  state(): Promise<number>;
  setState(state: number): Promise<void>;
  /** Up to `size` bytes of the saving stream; fewer means no more (for now). */
  read(size: number): Promise<Uint8Array>;
  write(data: Uint8Array): Promise<void>;
  /** The largest read or write to ask for at once. */
  readonly maxChunk: number;
}

/** A vfio-user session as a migration peer. */
export function clientPeer(client: VfioUserClient): MigrationPeer {
  return {
    flags: () => migrationFlags(client),
    state: () => migrationState(client),
    setState: (s) => setMigrationState(client, s),
    read: (size) => client.migrationDataRead(size),
    write: (data) => client.migrationDataWrite(data),
    maxChunk: Math.min(client.serverCapabilities.maxDataXferSize, 1 << 20),
  };
}

/** An in-process device file as a migration peer (the daemon's own side of a move). */
export function filePeer(file: DeviceFile, maxChunk = 1 << 20): MigrationPeer {
  return {
    flags: async () => file.migrationFlags(),
    state: async () => file.migrationState(),
    setState: (s) => file.setMigrationState(s),
    read: async (size) => file.migrationDataRead(size),
    write: async (data) => file.migrationDataWrite(data),
    maxChunk,
  };
}

/** VFIO_DEVICE_FEATURE_MIGRATION: the device's MigrationFlags. */
export async function migrationFlags(client: VfioUserClient): Promise<number> {
  return decodeMigrationFlags(await client.feature(Feature.MIGRATION, 'get', new Uint8Array(0), FeatureSize.MIGRATION));
}

/** GET of MIG_DEVICE_STATE. */
export async function migrationState(client: VfioUserClient): Promise<MigStateValue> {
  return decodeMigState(await client.feature(Feature.MIG_DEVICE_STATE, 'get', new Uint8Array(0), FeatureSize.MIG_STATE)) as MigStateValue;
}

/** SET of MIG_DEVICE_STATE: resolves once the device is in `state`. */
export async function setMigrationState(client: VfioUserClient, state: number): Promise<void> {
  await client.feature(Feature.MIG_DEVICE_STATE, 'set', encodeMigState(state));
}

/** DMA_LOGGING_START: resolves with the page size the device chose. */
export async function startDmaLogging(client: VfioUserClient, control: DmaLoggingControl): Promise<number> {
  const reply = await client.feature(Feature.DMA_LOGGING_START, 'set', encodeDmaLoggingControl(control));
  return Number(new DataView(reply.buffer, reply.byteOffset).getBigUint64(0, true));
}

/** DMA_LOGGING_STOP. */
export async function stopDmaLogging(client: VfioUserClient): Promise<void> {
  await client.feature(Feature.DMA_LOGGING_STOP, 'set', encodeDmaLoggingControl({ pageSize: 4096, ranges: [] }));
}

/**
 * DMA_LOGGING_REPORT of [iova, iova+length) in `pageSize` units: the
 * bitmap (bit i set: the page at iova + i*pageSize was written), read and
 * cleared on the device.
 */
export async function dmaLoggingReport(client: VfioUserClient, iova: number, length: number, pageSize: number): Promise<Uint8Array> {
  const request = encodeDmaLoggingReport({ iova, length, pageSize });
  const reply = await client.feature(Feature.DMA_LOGGING_REPORT, 'get', request, FeatureSize.LOGGING_REPORT + bitmapBytes(length, pageSize));
  return reply.subarray(FeatureSize.LOGGING_REPORT);
}

/** How `migrate` goes about it. */
export interface MigrateOptions {
  /** PRE_COPY rounds while the source runs (default 1; 0 or a source without PRE_COPY: none). */
  precopyRounds?: number;
  /** Leave the destination in STOP instead of RUNNING. */
  leaveDestinationStopped?: boolean;
  /** Bytes per read and write (default: both peers' maxChunk). */
  chunkSize?: number;
}

/** What `migrate` did. */
export interface MigrationStats {
  /** bytes moved in PRE_COPY rounds, and after the source stopped */
  precopyBytes: number;
  stopCopyBytes: number;
  precopyRounds: number;
  /** from the source's stop to the destination running, in ms */
  downtimeMs: number;
  totalMs: number;
}

/** A bound on reads per stage, so a peer that never ends its stream cannot hold us forever. */
const MAX_READS = 1 << 20;

/** Moves the state of `src`'s device into `dst`'s device (see the module comment). */
export async function migrate(src: MigrationPeer, dst: MigrationPeer, options: MigrateOptions = {}): Promise<MigrationStats> {
  const started = performance.now();
  const chunk = Math.max(1, Math.min(options.chunkSize ?? Infinity, src.maxChunk, dst.maxChunk));
  const [srcFlags, dstFlags] = await Promise.all([step('the source', src.flags()), step('the destination', dst.flags())]);
  if ((srcFlags & MigrationFlags.STOP_COPY) === 0 || (dstFlags & MigrationFlags.STOP_COPY) === 0) {
    throw new VfioError('EINVAL', 'migrate: both devices must have STOP_COPY');
  }
  const rounds = (srcFlags & MigrationFlags.PRE_COPY) !== 0 ? Math.max(0, options.precopyRounds ?? 1) : 0;
  const stats: MigrationStats = { precopyBytes: 0, stopCopyBytes: 0, precopyRounds: 0, downtimeMs: 0, totalMs: 0 };
  await step('the destination → RESUMING', dst.setState(MigState.RESUMING));
  try {
    if (rounds > 0) {
      await step('the source → PRE_COPY', src.setState(MigState.PRE_COPY));
      for (; stats.precopyRounds < rounds; stats.precopyRounds++) stats.precopyBytes += await pump(src, dst, chunk, 'PRE_COPY');
    }
    const stoppedAt = performance.now();
    await step('the source → STOP_COPY', src.setState(MigState.STOP_COPY));
    stats.stopCopyBytes = await pump(src, dst, chunk, 'STOP_COPY');
    await step('the destination → STOP (loading the stream)', dst.setState(MigState.STOP));
    if (options.leaveDestinationStopped !== true) await step('the destination → RUNNING', dst.setState(MigState.RUNNING));
    stats.downtimeMs = performance.now() - stoppedAt;
    await step('the source → STOP', src.setState(MigState.STOP));
  } catch (err) {
    // Cancelled: the source runs on, as if nothing happened.
    await src.setState(MigState.RUNNING).catch(() => undefined);
    throw err;
  }
  stats.totalMs = performance.now() - started;
  return stats;
}

/** Reads the source's stream until a short read, writing each piece to the destination. */
async function pump(src: MigrationPeer, dst: MigrationPeer, chunk: number, stage: string): Promise<number> {
  let total = 0;
  for (let i = 0; i < MAX_READS; i++) {
    const data = await step(`reading the source's ${stage} data`, src.read(chunk));
    if (data.length > 0) await step(`writing the destination's stream`, dst.write(data));
    total += data.length;
    if (data.length < chunk) return total;
  }
  throw new VfioError('EIO', `migrate: the source's ${stage} stream did not end after ${MAX_READS} reads`);
}

/** Awaits `p`, naming `what` in the error. */
async function step<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof VfioError) throw new VfioError(err.code, `migrate: ${what}: ${err.message}`, { cause: err });
    throw err;
  }
}
