/** The command handlers by command id (client-to-server commands only). */
import { Command } from '../protocol.js';
import { deviceFeature } from './device-feature.js';
import { deviceGetInfo } from './device-get-info.js';
import { deviceReset } from './device-reset.js';
import { dirtyPages } from './dirty-pages.js';
import { dmaMap } from './dma-map.js';
import { dmaUnmap } from './dma-unmap.js';
import { getIrqInfo } from './get-irq-info.js';
import { getRegionInfo } from './get-region-info.js';
import { getRegionIoFds } from './get-region-io-fds.js';
import type { CommandHandler } from './handler.js';
import { migDataRead } from './mig-data-read.js';
import { migDataWrite } from './mig-data-write.js';
import { regionRead } from './region-read.js';
import { regionWrite } from './region-write.js';
import { setIrqs } from './set-irqs.js';
import { version } from './version.js';
import { writeMulti } from './write-multi.js';

export type { CommandHandler, Request, Session } from './handler.js';

const table: (CommandHandler | undefined)[] = [];
table[Command.VERSION] = version;
table[Command.DMA_MAP] = dmaMap;
table[Command.DMA_UNMAP] = dmaUnmap;
table[Command.DEVICE_GET_INFO] = deviceGetInfo;
table[Command.DEVICE_GET_REGION_INFO] = getRegionInfo;
table[Command.DEVICE_GET_REGION_IO_FDS] = getRegionIoFds;
table[Command.DEVICE_GET_IRQ_INFO] = getIrqInfo;
table[Command.DEVICE_SET_IRQS] = setIrqs;
table[Command.REGION_READ] = regionRead;
table[Command.REGION_WRITE] = regionWrite;
table[Command.DEVICE_RESET] = deviceReset;
table[Command.DIRTY_PAGES] = dirtyPages;
table[Command.REGION_WRITE_MULTI] = writeMulti;
table[Command.DEVICE_FEATURE] = deviceFeature;
table[Command.MIG_DATA_READ] = migDataRead;
table[Command.MIG_DATA_WRITE] = migDataWrite;

/** The handler of a command id, or undefined for one a server does not take (ENOSYS / EINVAL). */
export const HANDLERS: readonly (CommandHandler | undefined)[] = table;
