/**
 * VFIO_USER_DIRTY_PAGES (14) left the protocol: checked for shape, so a
 * malformed one earns EINVAL, then refused with EOPNOTSUPP.
 */
import { VfioError } from '../../base/errors.js';
import { decodeDirtyPages } from '../decoder.js';
import type { CommandHandler } from './handler.js';

export const dirtyPages: CommandHandler = (_session, req) => {
  decodeDirtyPages(req.body, req.fds);
  throw new VfioError('EOPNOTSUPP', 'VFIO_USER_DIRTY_PAGES was removed from the protocol; use DEVICE_FEATURE DMA logging');
};
