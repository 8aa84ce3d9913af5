/**
 * A virtio-blk device on a raw image in a temporary directory, served over
 * a real UNIX socket, and a guest (VirtioGuest) connected to it with its
 * memory mapped either way: through an fd the server maps, or reached by
 * DMA_READ/DMA_WRITE messages.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VfioCore } from '../../src/core/index.js';
import { FileBackend, VirtioBlkDevice } from '../../src/drivers/virtio-blk/index.js';
import { VfioUserClient, VfioUserServer } from '../../src/vfio-user/index.js';
import { LAYOUT, VirtioGuest } from './virtio-guest.js';

export const GUEST_BASE = 0x4000_0000;
/** Image size in the tests: 4 MiB. */
export const IMAGE_BYTES = 4 * 1024 * 1024;

export type DmaPath = 'fd' | 'messages';

export interface BlkBench {
  dir: string;
  image: string;
  core: VfioCore;
  server: VfioUserServer;
  device: VirtioBlkDevice;
  connect(path?: DmaPath): Promise<{ c: VfioUserClient; guest: VirtioGuest }>;
  close(): Promise<void>;
}

/** An image filled by `fill(i)` per byte (default i & 0xff), served read-write unless `readOnly`. */
export async function startBlk(o: { readOnly?: boolean; imageBytes?: number; fill?: (i: number) => number } = {}): Promise<BlkBench> {
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-vblk-'));
  const image = join(dir, 'disk.img');
  const size = o.imageBytes ?? IMAGE_BYTES;
  const bytes = new Uint8Array(size);
  const fill = o.fill ?? ((i: number) => i & 0xff);
  for (let i = 0; i < size; i++) bytes[i] = fill(i);
  writeFileSync(image, bytes);
  const core = new VfioCore({ requestBackoffMs: () => 20 });
  const server = new VfioUserServer({ core, socketDir: join(dir, 'sockets') });
  const backend = await FileBackend.open(image, o.readOnly ?? false);
  const device = new VirtioBlkDevice({ name: 'vblk0', core, backend });
  device.register();
  await server.serve(device);
  const clients: VfioUserClient[] = [];
  return {
    dir,
    image,
    core,
    server,
    device,
    async connect(path: DmaPath = 'fd') {
      const c = await VfioUserClient.connect(server.socketPath(device.name)!);
      clients.push(c);
      const region = path === 'fd' ? await c.dmaMapMemory(GUEST_BASE, LAYOUT.SIZE) : await c.dmaMapMessages(GUEST_BASE, new Uint8Array(LAYOUT.SIZE));
      return { c, guest: new VirtioGuest(c, region.bytes, GUEST_BASE) };
    },
    async close() {
      for (const c of clients) c.close();
      await server.close();
      if (device.state === 'registered' || device.state === 'unregistering') await device.unregister();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
