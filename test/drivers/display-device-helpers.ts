/** Helpers for the display device tests: a bound file and byte-level region access. */
import { VfioCore, VfioError, type DeviceFile, type VfioDevice } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';

export const isCode = (code: string) => (e: unknown) => e instanceof VfioError && e.code === code;

export function fastCore(): VfioCore {
  return new VfioCore({ requestBackoffMs: () => 5 });
}

/** Registers `dev` and returns a file bound to a fresh iommufd context. */
export async function registerAndBind(dev: VfioDevice): Promise<DeviceFile> {
  dev.register();
  const file = dev.openFile();
  await file.bindIommufd(new IommufdContext());
  return file;
}

export async function closeAll(dev: VfioDevice, ...files: DeviceFile[]): Promise<void> {
  for (const f of files) await f.close();
  await dev.unregister();
}

export async function readBytes(f: DeviceFile, index: number, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await f.regionRead(index, offset, out);
  return out;
}

/** A little-endian value of `size` bytes of region `index`. */
export async function readLe(f: DeviceFile, index: number, offset: number, size: number): Promise<number> {
  return [...(await readBytes(f, index, offset, size))].reduceRight((v, b) => v * 256 + b, 0);
}

export async function writeLe(f: DeviceFile, index: number, offset: number, size: number, value: number): Promise<void> {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(value / 256 ** i) & 0xff;
  await f.regionWrite(index, offset, b);
}

/** Sizes BAR `index` the way an OS does: write all-ones, read back, restore. */
export async function sizeBar(f: DeviceFile, configRegion: number, index: number): Promise<{ size: number; flags: number }> {
  const off = 0x10 + 4 * index;
  const saved = await readLe(f, configRegion, off, 4);
  await writeLe(f, configRegion, off, 4, 0xffffffff);
  const probe = await readLe(f, configRegion, off, 4);
  await writeLe(f, configRegion, off, 4, saved);
  return { size: (~(probe & ~0xf) + 1) >>> 0, flags: probe & 0xf };
}
