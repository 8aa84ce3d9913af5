/**
 * VFIO_USER_DEVICE_FEATURE: get, set or probe a feature. The features of
 * the spec are the core's (migration v2, DMA logging) and are decoded here
 * (feature-data.ts); any other goes to the device's own deviceFeature op.
 *
 * As the kernel's vfio_check_feature: an operation the feature does not
 * have (SET of MIGRATION, GET of DMA_LOGGING_START...) is EINVAL; PROBE
 * succeeds when the feature and every operation it names exist, and does
 * nothing; a device without migration answers ENOTTY for MIGRATION and
 * MIG_DEVICE_STATE. DMA logging exists for every bound client: it logs the
 * writes the device makes to that client's memory.
 *
 * Replies: SET and PROBE echo the request (a START reply carries the page
 * size the device chose; a MIG_DEVICE_STATE reply the state reached, with
 * data_fd -1); GET answers with the feature's data, at most argsz - 8
 * bytes (and never more than max_data_xfer_size, whatever argsz claims).
 */
import { VfioError } from '../../base/errors.js';
import { Feature, FeatureFlags, type FeatureRequest } from '../../base/uapi.js';
import { MAX_LOG_RANGES } from '../../iommufd/dirty-log.js';
import { decodeDeviceFeature } from '../decoder.js';
import {
  decodeDmaLoggingControl,
  decodeDmaLoggingReport,
  decodeMigState,
  encodeMigrationFlags,
  encodeMigState,
  FeatureSize,
  withPageSize,
} from '../feature-data.js';
import type { DeviceFeatureMessage } from '../messages.js';
import { Size } from '../protocol.js';
import { encodeDeviceFeatureReply } from '../serializer.js';
import { after, type CommandHandler, type Request, type Session } from './handler.js';

const { GET, SET } = FeatureFlags;

/** Which of GET and SET each feature of the core has. */
const OPS: Record<number, number> = {
  [Feature.MIGRATION]: GET,
  [Feature.MIG_DEVICE_STATE]: GET | SET,
  [Feature.DMA_LOGGING_START]: SET,
  [Feature.DMA_LOGGING_STOP]: SET,
  [Feature.DMA_LOGGING_REPORT]: GET,
};

export const deviceFeature: CommandHandler = (session, req) => {
  const f = decodeDeviceFeature(req.body, req.fds);
  const ops = OPS[f.feature];
  if (ops === undefined) return driverFeature(session, req, f);
  const asked = f.flags & (GET | SET);
  if ((asked & ~ops) !== 0) {
    throw new VfioError(
      'EINVAL',
      `VFIO_USER_DEVICE_FEATURE: feature ${f.feature} cannot be ${(asked & ~ops) === GET ? 'read (GET)' : 'written (SET)'}`,
    );
  }
  const file = session.file;
  const echo = (data: Uint8Array = f.data): void => reply(session, req, f, data);
  const room = (): number => Math.min(f.argsz - Size.DEVICE_FEATURE, session.decode.maxDataXferSize ?? 0);
  switch (f.feature) {
    case Feature.MIGRATION:
      return after(file.migrationFlags(), (flags) => echo(f.probe ? f.data : encodeMigrationFlags(flags)));
    case Feature.MIG_DEVICE_STATE:
      if (f.probe) return after(file.migrationFlags(), () => echo());
      if (f.get) return after(file.migrationState(), (state) => echo(encodeMigState(state)));
      {
        const target = decodeMigState(f.data);
        return file.setMigrationState(target).then(() => echo(encodeMigState(target)));
      }
    case Feature.DMA_LOGGING_START: {
      if (f.probe) return echo();
      const control = decodeDmaLoggingControl(f.data, MAX_LOG_RANGES);
      return after(file.dmaLoggingStart(control.pageSize, control.ranges), (pageSize) => echo(withPageSize(f.data, pageSize)));
    }
    case Feature.DMA_LOGGING_STOP:
      if (f.probe) return echo();
      return after(file.dmaLoggingStop(), () => echo());
    case Feature.DMA_LOGGING_REPORT: {
      if (f.probe) return echo();
      const r = decodeDmaLoggingReport(f.data);
      const maxBitmap = room() - FeatureSize.LOGGING_REPORT;
      if (maxBitmap < 0) throw new VfioError('EINVAL', `VFIO_USER_DEVICE_FEATURE: argsz ${f.argsz} has no room for a DMA logging report`);
      return after(file.dmaLoggingReport(r.iova, r.length, r.pageSize, maxBitmap), (bitmap) => {
        const out = new Uint8Array(FeatureSize.LOGGING_REPORT + bitmap.length);
        out.set(f.data.subarray(0, FeatureSize.LOGGING_REPORT));
        out.set(bitmap, FeatureSize.LOGGING_REPORT);
        echo(out);
      });
    }
  }
};

/** GET answers must fit the argsz the client gave. */
function reply(session: Session, req: Request, f: DeviceFeatureMessage, data: Uint8Array): void {
  if (f.get && !f.probe && Size.DEVICE_FEATURE + data.length > f.argsz) {
    throw new VfioError(
      'EINVAL',
      `VFIO_USER_DEVICE_FEATURE: the answer needs argsz ${Size.DEVICE_FEATURE + data.length}, the request gave ${f.argsz}`,
    );
  }
  session.reply(req, encodeDeviceFeatureReply(req.msgId, { feature: f.feature, get: f.get, set: f.set, probe: f.probe, data }));
}

/**
 * A feature of the device's own: GET hands it room for its answer, holding
 * the request's data first; SET and PROBE replies echo the request unless
 * the device answers with data of its own.
 */
function driverFeature(session: Session, req: Request, f: DeviceFeatureMessage): void | Promise<void> {
  const op: FeatureRequest['op'] = f.probe ? 'probe' : f.get ? 'get' : 'set';
  let data = f.data;
  if (op === 'get') {
    const room = Math.min(f.argsz - Size.DEVICE_FEATURE, session.decode.maxDataXferSize ?? 0);
    data = new Uint8Array(Math.max(room, f.data.length));
    data.set(f.data);
  }
  return after(session.file.deviceFeature({ feature: f.feature, op, data }), (answer) => reply(session, req, f, answer ?? data));
}
