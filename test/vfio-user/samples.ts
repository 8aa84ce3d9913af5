/**
 * A corpus of valid messages, one or more of every kind in both directions,
 * shared by the framer, round-trip and fuzz tests. Each sample says who
 * receives it and how many fds travel with it.
 */
import { DeviceFlags, IrqInfoFlags, PciIrq, PciRegion, RegionFlags } from '../../src/base/uapi.js';
import {
  Command,
  type DecodeContext,
  type DeviceShape,
  encodeDeviceFeature,
  encodeDeviceFeatureReply,
  encodeDeviceInfoReply,
  encodeDeviceInfoRequest,
  encodeDeviceReset,
  encodeDmaMap,
  encodeDmaRead,
  encodeDmaReadReply,
  encodeDmaUnmap,
  encodeDmaUnmapReply,
  encodeDmaWrite,
  encodeDmaWriteReply,
  encodeEmptyReply,
  encodeErrorReply,
  encodeIrqInfoReply,
  encodeIrqInfoRequest,
  encodeMigDataRead,
  encodeMigDataReadReply,
  encodeMigDataWrite,
  encodeRegionInfoReply,
  encodeRegionInfoRequest,
  encodeRegionIoFdsReply,
  encodeRegionIoFdsRequest,
  encodeRegionRead,
  encodeRegionReadReply,
  encodeRegionWrite,
  encodeRegionWriteReply,
  encodeSetIrqs,
  encodeVersionCommand,
  encodeVersionReply,
  encodeWriteMulti,
  encodeWriteMultiReply,
  IoFdType,
} from '../../src/vfio-user/index.js';

export interface Sample {
  name: string;
  bytes: Uint8Array;
  /** how many fds travel with the message */
  fds: number;
  receiver: 'server' | 'client';
  kind: 'command' | 'reply';
}

/** A small PCI device: 9 regions (BAR0 4 KiB, BAR2 64 KiB, config 256 B), 5 IRQ indexes. */
export const device: DeviceShape = {
  numRegions: PciRegion.NUM,
  numIrqs: PciIrq.NUM,
  regionSize: (i) => ({ [PciRegion.BAR0]: 4096, [PciRegion.BAR2]: 65536, [PciRegion.CONFIG]: 256 })[i] ?? 0,
  irqInfo: (i) =>
    i === PciIrq.INTX
      ? { count: 1, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED }
      : i === PciIrq.MSIX
        ? { count: 16, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.NORESIZE }
        : { count: i < PciIrq.NUM ? 1 : 0, flags: IrqInfoFlags.EVENTFD },
};

export const ctx: DecodeContext = { device, maxDataXferSize: 1 << 20 };

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

export function samples(): Sample[] {
  const s: Sample[] = [];
  const cmd = (name: string, b: Uint8Array, fds = 0): void => {
    s.push({ name, bytes: b, fds, receiver: 'server', kind: 'command' });
  };
  const toClient = (name: string, b: Uint8Array, fds = 0, kind: 'command' | 'reply' = 'reply'): void => {
    s.push({ name, bytes: b, fds, receiver: 'client', kind });
  };
  const toServerReply = (name: string, b: Uint8Array): void => {
    s.push({ name, bytes: b, fds: 0, receiver: 'server', kind: 'reply' });
  };

  // client → server commands
  cmd(
    'version',
    encodeVersionCommand(1, {
      major: 0,
      minor: 2,
      capabilities: {
        maxMsgFds: 16,
        maxDataXferSize: 1 << 20,
        maxDmaMaps: 65535,
        pgsizes: 4096n,
        writeMultiple: true,
        migration: { pgsize: 4096, maxBitmapSize: 256 << 20 },
        twinSocket: { supported: true },
      },
    }),
  );
  cmd('version-no-json', encodeVersionCommand(2, { major: 0, minor: 0, capabilities: undefined }));
  cmd('dma-map-fd', encodeDmaMap(3, { readable: true, writable: true, offset: 0n, address: 0x1_0000_0000n, size: 0x2000_0000n }), 1);
  cmd('dma-map-nofd', encodeDmaMap(4, { readable: true, writable: false, offset: 0n, address: 0xc0000n, size: 0x10000n }));
  cmd('dma-unmap', encodeDmaUnmap(5, { address: 0xc0000n, size: 0x10000n }));
  cmd('dma-unmap-all', encodeDmaUnmap(6, { all: true, address: 0n, size: 0n }));
  cmd('get-info', encodeDeviceInfoRequest(7));
  cmd('get-region-info', encodeRegionInfoRequest(8, PciRegion.BAR2, 256));
  cmd('get-region-io-fds', encodeRegionIoFdsRequest(9, PciRegion.BAR0, 1024));
  cmd('get-irq-info', encodeIrqInfoRequest(10, PciIrq.MSIX));
  cmd('set-irqs-eventfd', encodeSetIrqs(11, { index: PciIrq.MSIX, start: 0, count: 3, action: 'trigger', data: 'eventfd' }), 3);
  cmd('set-irqs-deassign', encodeSetIrqs(12, { index: PciIrq.MSIX, start: 2, count: 2, action: 'trigger', data: 'eventfd' }));
  cmd('set-irqs-bool', encodeSetIrqs(13, { index: PciIrq.INTX, start: 0, count: 1, action: 'unmask', data: 'bool', values: [true] }));
  cmd('set-irqs-disable', encodeSetIrqs(14, { index: PciIrq.MSIX, start: 0, count: 0, action: 'trigger', data: 'none' }));
  cmd('set-irqs-mask', encodeSetIrqs(15, { index: PciIrq.INTX, start: 0, count: 1, action: 'mask', data: 'none' }));
  cmd('region-read', encodeRegionRead(16, 0x10, PciRegion.CONFIG, 4));
  cmd('region-write', encodeRegionWrite(17, 0x100, PciRegion.BAR0, bytes(8)));
  cmd('region-write-posted', encodeRegionWrite(18, 0, PciRegion.BAR2, bytes(4096, 7), { noReply: true }));
  cmd(
    'region-write-multi',
    encodeWriteMulti(
      19,
      [
        { offset: 0, region: PciRegion.BAR0, data: bytes(4) },
        { offset: 8, region: PciRegion.BAR0, data: bytes(8, 3) },
        { offset: 0x40, region: PciRegion.CONFIG, data: bytes(1, 5) },
      ],
      { noReply: true },
    ),
  );
  cmd('device-reset', encodeDeviceReset(20));
  cmd('feature-probe', encodeDeviceFeature(21, { feature: 1, get: true, set: false, probe: true, data: new Uint8Array(0) }));
  cmd('feature-get', encodeDeviceFeature(22, { feature: 1, get: true, set: false, probe: false, data: new Uint8Array(0), argsz: 16 }));
  cmd('feature-set', encodeDeviceFeature(23, { feature: 2, get: false, set: true, probe: false, data: bytes(8) }));
  cmd('mig-data-read', encodeMigDataRead(24, 4096));
  cmd('mig-data-write', encodeMigDataWrite(25, bytes(300)));

  // server → client replies
  toClient(
    'r-version',
    encodeVersionReply(1, {
      major: 0,
      minor: 2,
      capabilities: { maxMsgFds: 8, maxDataXferSize: 1 << 20, twinSocket: { supported: true, fdIndex: 0 } },
    }),
    1,
  );
  toClient('r-dma-map', encodeEmptyReply(3, Command.DMA_MAP));
  toClient('r-dma-unmap', encodeDmaUnmapReply(5, { argsz: 24, flags: 0, all: false, address: 0xc0000n, size: 0x10000n }));
  toClient('r-get-info', encodeDeviceInfoReply(7, { flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: 9, numIrqs: 5 }));
  const bar2 = {
    index: PciRegion.BAR2,
    flags: RegionFlags.READ | RegionFlags.WRITE | RegionFlags.MMAP,
    size: 65536,
    sparseMmap: [{ offset: 4096, size: 61440 }],
    type: { type: 0x80000000, subtype: 3 },
    mmap: { fd: 99, offset: 0x10000 },
  };
  toClient('r-region-info-full', encodeRegionInfoReply(8, bar2, 256).message, 1);
  toClient('r-region-info-short', encodeRegionInfoReply(8, bar2, 32).message);
  toClient(
    'r-region-io-fds',
    encodeRegionIoFdsReply(
      9,
      {
        index: PciRegion.BAR0,
        subRegions: [
          { offset: 0x100n, size: 4n, fdIndex: 0, type: IoFdType.IOEVENTFD, flags: 1, aux: 0, datamatch: 7n },
          { offset: 0x200n, size: 4n, fdIndex: 1, type: IoFdType.IOEVENTFD, flags: 0, aux: 0, datamatch: 0n },
        ],
      },
      1024,
    ).message,
    2,
  );
  toClient('r-irq-info', encodeIrqInfoReply(10, { index: PciIrq.MSIX, flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.NORESIZE, count: 16 }));
  toClient('r-set-irqs', encodeEmptyReply(11, Command.DEVICE_SET_IRQS));
  toClient('r-region-read', encodeRegionReadReply(16, 0x10, PciRegion.CONFIG, bytes(4)));
  toClient('r-region-write', encodeRegionWriteReply(17, 0x100, PciRegion.BAR0, 8));
  toClient('r-write-multi', encodeWriteMultiReply(19, 3));
  toClient('r-reset', encodeEmptyReply(20, Command.DEVICE_RESET));
  toClient('r-feature', encodeDeviceFeatureReply(22, { feature: 1, get: true, set: false, probe: false, data: bytes(8) }));
  toClient('r-mig-read', encodeMigDataReadReply(24, bytes(100)));
  toClient('r-mig-write', encodeEmptyReply(25, Command.MIG_DATA_WRITE));
  toClient('r-error', encodeErrorReply(26, Command.REGION_READ, 'EINVAL'));

  // server → client commands, and their replies (server receives)
  toClient('dma-read', encodeDmaRead(100, 0x1_0000_1000n, 512), 0, 'command');
  toClient('dma-write', encodeDmaWrite(101, 0x1_0000_2000n, bytes(256, 9)), 0, 'command');
  toServerReply('r-dma-read', encodeDmaReadReply(100, 0x1_0000_1000n, bytes(512, 2)));
  toServerReply('r-dma-write', encodeDmaWriteReply(101, 0x1_0000_2000n, 256));
  return s;
}
