/**
 * VFIO_USER_DEVICE_FEATURE: get, set or probe a feature (migration, DMA
 * logging). For GET the device is handed room for its answer, at most
 * argsz - 8 bytes (and never more than max_data_xfer_size, whatever argsz
 * claims), holding the request's own data first (a DMA logging report's
 * range). SET and PROBE replies echo the request, unless the device
 * answers with data of its own (DMA logging may change the page size).
 */
import { VfioError } from '../../base/errors.js';
import type { FeatureRequest } from '../../base/uapi.js';
import { decodeDeviceFeature } from '../decoder.js';
import { Size } from '../protocol.js';
import { encodeDeviceFeatureReply } from '../serializer.js';
import { after, type CommandHandler } from './handler.js';

export const deviceFeature: CommandHandler = (session, req) => {
  const f = decodeDeviceFeature(req.body, req.fds);
  const op: FeatureRequest['op'] = f.probe ? 'probe' : f.get ? 'get' : 'set';
  let data = f.data;
  if (op === 'get') {
    const room = Math.min(f.argsz - Size.DEVICE_FEATURE, session.decode.maxDataXferSize ?? 0);
    data = new Uint8Array(Math.max(room, f.data.length));
    data.set(f.data);
  }
  return after(session.file.deviceFeature({ feature: f.feature, op, data }), (answer) => {
    const out = answer ?? data;
    if (op === 'get' && Size.DEVICE_FEATURE + out.length > f.argsz) {
      throw new VfioError('EINVAL', `VFIO_USER_DEVICE_FEATURE: the answer needs argsz ${Size.DEVICE_FEATURE + out.length}, the request gave ${f.argsz}`);
    }
    session.reply(req, encodeDeviceFeatureReply(req.msgId, { feature: f.feature, get: f.get, set: f.set, probe: f.probe, data: out }));
  });
};
