import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciRegion, RegionFlags, RegionType, type DeviceFile } from '../../src/core/index.js';
import { MappedMemory } from '../../src/native/memory.js';
import { PCI_HEADER } from '../../src/pci/index.js';
import { buildEdid, isValidEdid, preferredTiming } from '../../src/drivers/display/edid.js';
import { captureScreen } from '../../src/drivers/display/screenshot.js';
import {
  DISPI_ENABLE,
  DISPI_ID5,
  DISPI_INDEX,
  EDID_BLOB_OFFSET,
  EDID_REG,
  LINK_STATE,
  MBOCHS_EDID_REGION,
  MbochsDevice,
} from '../../src/drivers/mbochs/index.js';
import { closeAll, fastCore, isCode, readBytes, readLe, registerAndBind, sizeBar, writeLe } from './display-device-helpers.js';
import { decodePng } from './display-png-decode.js';

const CFG = PciRegion.CONFIG;
const MMIO = 2;
const MB = 1024 * 1024;

async function mbochs(memoryBytes = 4 * MB, maxWidth = 800, maxHeight = 600) {
  const dev = new MbochsDevice({ name: `mbochs-${memoryBytes}`, core: fastCore(), memoryBytes, maxWidth, maxHeight });
  return { dev, file: await registerAndBind(dev) };
}

const dispi = (f: DeviceFile, index: number) => readLe(f, MMIO, 0x500 + 2 * index, 2);
const setDispi = (f: DeviceFile, index: number, v: number) => writeLe(f, MMIO, 0x500 + 2 * index, 2, v);

/** What the guest's bochs driver does to bring up a mode (bochs_hw_setmode). */
async function bochsSetMode(f: DeviceFile, xres: number, yres: number, fbSize: number): Promise<void> {
  await writeLe(f, MMIO, 0x400 + 0x02, 1, 0x01); // VGA_MIS_W: colour
  await readLe(f, MMIO, 0x400 + 0x1a, 1); // VGA_IS1_RC
  await writeLe(f, MMIO, 0x400 + 0x00, 1, 0x20); // VGA_ATT_W: unblank
  await setDispi(f, DISPI_INDEX.ENABLE, 0);
  await setDispi(f, DISPI_INDEX.BPP, 32);
  await setDispi(f, DISPI_INDEX.XRES, xres);
  await setDispi(f, DISPI_INDEX.YRES, yres);
  await setDispi(f, DISPI_INDEX.BANK, 0);
  await setDispi(f, DISPI_INDEX.VIRT_WIDTH, xres);
  await setDispi(f, DISPI_INDEX.VIRT_HEIGHT, Math.floor(fbSize / (xres * 4)));
  await setDispi(f, DISPI_INDEX.X_OFFSET, 0);
  await setDispi(f, DISPI_INDEX.Y_OFFSET, 0);
  await setDispi(f, DISPI_INDEX.ENABLE, DISPI_ENABLE.ENABLED | DISPI_ENABLE.LFB_ENABLED);
}

test('mbochs: 1234:1111, subsystem 1af4:1100, revision 1, display class: what bochs binds to', async () => {
  const { dev, file } = await mbochs();
  assert.equal(await readLe(file, CFG, 0, 4), 0x11111234);
  assert.equal(await readLe(file, CFG, PCI_HEADER.SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
  assert.equal(await readLe(file, CFG, PCI_HEADER.REVISION_ID, 4), 0x03800001);
  await closeAll(dev, file);
});

test('mbochs: BAR0 32-bit prefetchable of the video memory size, BAR2 4 KiB MMIO, nothing else', async () => {
  for (const mem of [4 * MB, 16 * MB, 64 * MB]) {
    const { dev, file } = await mbochs(mem);
    assert.deepEqual(await sizeBar(file, CFG, 0), { size: mem, flags: 0x8 });
    assert.deepEqual(await sizeBar(file, CFG, 2), { size: 4096, flags: 0x0 });
    for (const bar of [1, 3, 4, 5]) assert.equal(await readLe(file, CFG, 0x10 + 4 * bar, 4), 0);
    await closeAll(dev, file);
  }
});

test('mbochs: ten regions; BAR0 offered by sparse mmap; region 9 is GFX/EDID', async () => {
  const { dev, file } = await mbochs();
  assert.equal((await file.getInfo()).numRegions, 10);
  const bar0 = await file.getRegionInfo(0);
  assert.equal(bar0.flags, RegionFlags.READ | RegionFlags.WRITE | RegionFlags.MMAP);
  assert.deepEqual(bar0.sparseMmap, [{ offset: 0, size: 4 * MB }]);
  assert.ok(bar0.mmap);
  const bar2 = await file.getRegionInfo(2);
  assert.equal(bar2.flags, RegionFlags.READ | RegionFlags.WRITE, 'registers are trapped, never mapped');
  assert.equal(bar2.size, 4096);
  const edid = await file.getRegionInfo(MBOCHS_EDID_REGION);
  assert.deepEqual(edid, {
    index: 9,
    flags: RegionFlags.READ | RegionFlags.WRITE,
    size: 4096,
    type: { type: RegionType.GFX, subtype: RegionType.GFX_EDID_SUBTYPE },
  });
  await assert.rejects(async () => file.getRegionInfo(10), isCode('EINVAL'));
  await closeAll(dev, file);
});

test('mbochs: what bochs_hw_init reads: dispi ID, video memory, EDID at BAR2 0x000', async () => {
  const { dev, file } = await mbochs(16 * MB, 1920, 1440);
  assert.equal(await dispi(file, DISPI_INDEX.ID), DISPI_ID5);
  assert.equal((await dispi(file, DISPI_INDEX.VIDEO_MEMORY_64K)) * 64 * 1024, 16 * MB);
  const edid = await readBytes(file, MMIO, 0, 128);
  assert.ok(isValidEdid(edid));
  assert.deepEqual([preferredTiming(edid).width, preferredTiming(edid).height], [1024, 768]);
  // byte by byte, as drm_edid_read_custom's callback reads it
  const bytewise = new Uint8Array(128);
  for (let i = 0; i < 128; i++) bytewise[i] = await readLe(file, MMIO, i, 1);
  assert.deepEqual(bytewise, edid);
  assert.ok(
    (await readBytes(file, MMIO, 128, 0x400 - 128)).every((b) => b === 0),
    'one block, no extensions',
  );
  assert.equal(await readLe(file, MMIO, 0x600, 4), 0, 'no QEMU extended registers');
  await closeAll(dev, file);
});

test('mbochs: a small device prefers 800x600 (its largest mode)', async () => {
  const { dev, file } = await mbochs(4 * MB, 800, 600);
  const t = preferredTiming(await readBytes(file, MMIO, 0, 128));
  assert.deepEqual([t.width, t.height], [800, 600]);
  await closeAll(dev, file);
});

test('mbochs: VGA ports, unknown registers and a read straddling the EDID window', async () => {
  const { dev, file } = await mbochs();
  await writeLe(file, MMIO, 0x400, 1, 0x20);
  assert.equal(await readLe(file, MMIO, 0x400, 1), 0);
  await writeLe(file, MMIO, 0xffc, 4, 0xdeadbeef);
  assert.equal(await readLe(file, MMIO, 0xffc, 4), 0);
  const window = await readBytes(file, MMIO, 0, 0x400);
  const straddle = await readBytes(file, MMIO, 0x3fe, 4);
  assert.deepEqual([...straddle], [window[0x3fe], window[0x3ff], 0, 0]);
  await assert.rejects(async () => file.regionRead(MMIO, 0xffe, new Uint8Array(4)), isCode('EINVAL'));
  await closeAll(dev, file);
});

test('mbochs: no plane until the guest sets a mode; then pixels drawn through the mapping come out in the PNG', async () => {
  const { dev, file } = await mbochs();
  assert.throws(
    () => dev.queryPlane(),
    (e: unknown) => isCode('ENOENT')(e) && (e as Error).message.includes(dev.name),
  );
  await bochsSetMode(file, 800, 600, 4 * MB);
  assert.deepEqual(dev.queryPlane(), { format: 'XRGB8888', width: 800, height: 600, stride: 3200, offset: 0 });
  const info = await file.getRegionInfo(0);
  const vram = MappedMemory.map(info.mmap!.fd, info.mmap!.offset, info.size);
  try {
    // four quadrants: red, green, blue, white (XRGB8888 little-endian: B, G, R, X)
    const colours = [
      [0, 0, 255],
      [0, 255, 0],
      [255, 0, 0],
      [255, 255, 255],
    ];
    for (let y = 0; y < 600; y++) {
      for (let x = 0; x < 800; x++) {
        const q = (y < 300 ? 0 : 2) + (x < 400 ? 0 : 1);
        vram.bytes.set([...colours[q]!, 0], y * 3200 + x * 4);
      }
    }
    const png = decodePng(captureScreen(dev).png);
    assert.deepEqual([png.width, png.height], [800, 600]);
    const at = (x: number, y: number) => [...png.rgb.subarray((y * 800 + x) * 3, (y * 800 + x) * 3 + 3)];
    assert.deepEqual(at(10, 10), [255, 0, 0]);
    assert.deepEqual(at(790, 10), [0, 255, 0]);
    assert.deepEqual(at(10, 590), [0, 0, 255]);
    assert.deepEqual(at(790, 590), [255, 255, 255]);
  } finally {
    vram.close();
  }
  await closeAll(dev, file);
});

test('mbochs: reset turns the display off and keeps video memory', async () => {
  const { dev, file } = await mbochs();
  await bochsSetMode(file, 640, 480, 4 * MB);
  await file.regionWrite(0, 0, Uint8Array.of(9, 9, 9, 9));
  await file.reset();
  assert.throws(() => dev.queryPlane(), isCode('ENOENT'));
  assert.equal(await dispi(file, DISPI_INDEX.ENABLE), 0);
  assert.deepEqual([...(await readBytes(file, 0, 0, 4))], [9, 9, 9, 9]);
  await closeAll(dev, file);
});

test('mbochs: the host swaps the monitor through the EDID region, and the guest sees it in BAR2', async () => {
  const { dev, file } = await mbochs(16 * MB, 1920, 1440);
  const E = MBOCHS_EDID_REGION;
  assert.equal(await readLe(file, E, EDID_REG.EDID_OFFSET, 4), EDID_BLOB_OFFSET);
  assert.equal(await readLe(file, E, EDID_REG.MAX_XRES, 4), 1920);
  assert.equal(await readLe(file, E, EDID_REG.MAX_YRES, 4), 1440);
  assert.equal(await readLe(file, E, EDID_REG.LINK_STATE, 4), LINK_STATE.UP);
  await writeLe(file, E, EDID_REG.LINK_STATE, 4, LINK_STATE.DOWN);
  assert.ok(
    (await readBytes(file, MMIO, 0, 8)).every((b) => b === 0),
    'unplugged: no EDID header',
  );
  const next = buildEdid({ width: 1280, height: 1024 });
  await file.regionWrite(E, EDID_BLOB_OFFSET, next);
  await writeLe(file, E, EDID_REG.EDID_SIZE, 4, next.length);
  await writeLe(file, E, EDID_REG.LINK_STATE, 4, LINK_STATE.UP);
  assert.deepEqual(await readBytes(file, MMIO, 0, 128), next);
  await closeAll(dev, file);
});

test('mbochs: less than 4 MiB of video memory is refused (bochs would ignore the device)', () => {
  assert.throws(() => new MbochsDevice({ name: 'tiny', core: fastCore(), memoryBytes: 2 * MB, maxWidth: 0, maxHeight: 0 }), isCode('EINVAL'));
});
