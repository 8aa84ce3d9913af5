import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciRegion, RegionFlags } from '../../src/core/index.js';
import { MappedMemory } from '../../src/native/memory.js';
import { PCI_HEADER } from '../../src/pci/index.js';
import { DRM_FORMAT } from '../../src/drivers/display/plane.js';
import { captureScreen } from '../../src/drivers/display/screenshot.js';
import { isDisplaySource } from '../../src/drivers/display/display-source.js';
import { MDPY_VENDORCAP, MdpyDevice } from '../../src/drivers/mdpy/index.js';
import { closeAll, fastCore, isCode, readBytes, readLe, registerAndBind, sizeBar, writeLe } from './display-device-helpers.js';
import { decodePng } from './display-png-decode.js';

const CFG = PciRegion.CONFIG;

async function mdpy(width = 640, height = 480) {
  const dev = new MdpyDevice({ name: `mdpy-${width}`, core: fastCore(), width, height });
  return { dev, file: await registerAndBind(dev) };
}

test('mdpy: 1b36:000f, subsystem 1af4:1100, revision 1, display class, no interrupt pin', async () => {
  const { dev, file } = await mdpy();
  assert.equal(await readLe(file, CFG, 0, 4), 0x000f1b36);
  assert.equal(await readLe(file, CFG, PCI_HEADER.SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
  assert.equal(await readLe(file, CFG, PCI_HEADER.REVISION_ID, 4), 0x03800001);
  assert.equal(await readLe(file, CFG, PCI_HEADER.INTERRUPT_PIN, 1), 0);
  await closeAll(dev, file);
});

test('mdpy: BAR0 is 32-bit prefetchable memory, the frame rounded up to a power of two', async () => {
  for (const [w, h, size] of [
    [640, 480, 2 << 20],
    [1024, 768, 4 << 20],
    [1920, 1080, 8 << 20],
  ] as const) {
    const { dev, file } = await mdpy(w, h);
    assert.deepEqual(await sizeBar(file, CFG, 0), { size, flags: 0x8 });
    for (let bar = 1; bar < 6; bar++) assert.equal(await readLe(file, CFG, 0x10 + 4 * bar, 4), 0);
    await closeAll(dev, file);
  }
});

test('mdpy: read-only vendor capability at 0x40 with format, width and height', async () => {
  const { dev, file } = await mdpy(1024, 768);
  assert.equal(await readLe(file, CFG, PCI_HEADER.CAPABILITY_LIST, 1), MDPY_VENDORCAP.OFFSET);
  assert.deepEqual([...(await readBytes(file, CFG, 0x40, 3))], [0x09, 0x00, 0x10], 'vendor cap, last, 16 bytes');
  const fields = async () => [
    await readLe(file, CFG, MDPY_VENDORCAP.FORMAT, 4),
    await readLe(file, CFG, MDPY_VENDORCAP.WIDTH, 4),
    await readLe(file, CFG, MDPY_VENDORCAP.HEIGHT, 4),
  ];
  assert.deepEqual(await fields(), [DRM_FORMAT.XRGB8888, 1024, 768]);
  for (const off of [0x40, 0x44, 0x48, 0x4c]) await writeLe(file, CFG, off, 4, 0x12345678);
  assert.deepEqual(await fields(), [DRM_FORMAT.XRGB8888, 1024, 768]);
  assert.equal(await readLe(file, CFG, 0x40, 1), 0x09);
  await closeAll(dev, file);
});

test('mdpy: BAR0 region offers the whole framebuffer through sparse mmap, backed by a memfd', async () => {
  const { dev, file } = await mdpy();
  const info = await file.getRegionInfo(0);
  assert.equal(info.size, 2 << 20);
  assert.equal(info.flags, RegionFlags.READ | RegionFlags.WRITE | RegionFlags.MMAP);
  assert.deepEqual(info.sparseMmap, [{ offset: 0, size: 2 << 20 }]);
  assert.ok(info.mmap && info.mmap.fd >= 0);
  // What a client maps is the device's framebuffer: a write there is a pixel on screen.
  const client = MappedMemory.map(info.mmap.fd, info.mmap.offset, info.size);
  try {
    client.bytes.set([0x11, 0x22, 0x33, 0x00], 0);
    assert.deepEqual([...(await readBytes(file, 0, 0, 4))], [0x11, 0x22, 0x33, 0]);
    assert.deepEqual([...dev.framebuffer.subarray(0, 3)], [0x11, 0x22, 0x33]);
    await file.regionWrite(0, 4, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual([...client.bytes.subarray(4, 8)], [1, 2, 3, 4]);
  } finally {
    client.close();
  }
  for (const region of [1, 2, 3, 4, 5, PciRegion.ROM, PciRegion.VGA]) assert.equal((await file.getRegionInfo(region)).size, 0);
  await closeAll(dev, file);
});

test('mdpy: the plane is the fixed mode; the screen starts as a grey ramp and reset paints it again', async () => {
  const { dev, file } = await mdpy();
  assert.ok(isDisplaySource(dev));
  assert.deepEqual(dev.queryPlane(), { format: 'XRGB8888', width: 640, height: 480, stride: 2560, offset: 0 });
  let png = decodePng(captureScreen(dev).png);
  assert.equal(png.width, 640);
  assert.deepEqual([...png.rgb.subarray(0, 3)], [0, 0, 0], 'black at the top');
  const last = 479 * 640 * 3;
  assert.deepEqual([...png.rgb.subarray(last, last + 3)], [254, 254, 254], 'near white at the bottom');
  await file.regionWrite(0, 0, new Uint8Array(16).fill(0xff));
  await file.reset();
  png = decodePng(captureScreen(dev).png);
  assert.deepEqual([...png.rgb.subarray(0, 3)], [0, 0, 0]);
  await closeAll(dev, file);
});

test('mdpy: accesses outside BAR0 fail with EINVAL; bad modes are refused', async () => {
  const { dev, file } = await mdpy();
  await assert.rejects(async () => file.regionRead(0, (2 << 20) - 2, new Uint8Array(4)), isCode('EINVAL'));
  await assert.rejects(async () => file.regionRead(2, 0, new Uint8Array(4)), isCode('EINVAL'));
  await closeAll(dev, file);
  assert.throws(() => new MdpyDevice({ name: 'bad', core: fastCore(), width: 0, height: 480 }), isCode('EINVAL'));
});
