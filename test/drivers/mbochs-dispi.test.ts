import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { DISPI_ENABLE, DISPI_ID0, DISPI_ID5, DISPI_INDEX, DISPI_MMIO_SIZE, DispiRegisters } from '../../src/drivers/mbochs/dispi.js';

const MB = 1024 * 1024;
const code = (c: string) => (e: unknown) => e instanceof VfioError && e.code === c;

function mmioRead(d: DispiRegisters, index: number): number {
  const b = new Uint8Array(2);
  d.readMmio(index * 2, b);
  return b[0]! | (b[1]! << 8);
}

function mmioWrite(d: DispiRegisters, index: number, value: number): void {
  d.writeMmio(index * 2, Uint8Array.of(value & 0xff, value >> 8));
}

/** What drivers/gpu/drm/tiny/bochs.c writes for a mode. */
function bochsSetMode(d: DispiRegisters, xres: number, yres: number, fbSize: number): void {
  const W = (i: number, v: number) => mmioWrite(d, i, v);
  W(DISPI_INDEX.ENABLE, 0);
  W(DISPI_INDEX.BPP, 32);
  W(DISPI_INDEX.XRES, xres);
  W(DISPI_INDEX.YRES, yres);
  W(DISPI_INDEX.BANK, 0);
  W(DISPI_INDEX.VIRT_WIDTH, xres);
  W(DISPI_INDEX.VIRT_HEIGHT, Math.floor(fbSize / (xres * 4)));
  W(DISPI_INDEX.X_OFFSET, 0);
  W(DISPI_INDEX.Y_OFFSET, 0);
  W(DISPI_INDEX.ENABLE, DISPI_ENABLE.ENABLED | DISPI_ENABLE.LFB_ENABLED);
}

test('dispi: power-on ID5 and the memory size in 64 KiB units, as bochs probes them', () => {
  const d = new DispiRegisters({ memoryBytes: 16 * MB });
  assert.equal(DISPI_MMIO_SIZE, 0x16, 'registers span 0x500-0x515');
  assert.equal(mmioRead(d, DISPI_INDEX.ID), DISPI_ID5);
  assert.equal(mmioRead(d, DISPI_INDEX.ID) & 0xfff0, DISPI_ID0);
  assert.equal(mmioRead(d, DISPI_INDEX.VIDEO_MEMORY_64K) * 64 * 1024, 16 * MB);
  assert.equal(mmioRead(d, DISPI_INDEX.ENABLE), 0);
  assert.equal(d.enabled, false);
});

test('dispi: ID takes only known versions; VIDEO_MEMORY_64K is read-only', () => {
  const d = new DispiRegisters({ memoryBytes: 4 * MB });
  mmioWrite(d, DISPI_INDEX.ID, 0xb0c2);
  assert.equal(d.read(DISPI_INDEX.ID), 0xb0c2);
  mmioWrite(d, DISPI_INDEX.ID, 0x1234);
  assert.equal(d.read(DISPI_INDEX.ID), 0xb0c2);
  mmioWrite(d, DISPI_INDEX.VIDEO_MEMORY_64K, 1);
  assert.equal(d.read(DISPI_INDEX.VIDEO_MEMORY_64K), 64);
  d.reset();
  assert.equal(d.read(DISPI_INDEX.ID), DISPI_ID5);
});

test('dispi: only aligned 16-bit MMIO accesses reach a register', () => {
  const d = new DispiRegisters({ memoryBytes: 4 * MB });
  const b4 = new Uint8Array(4).fill(0xaa);
  d.readMmio(0, b4);
  assert.deepEqual([...b4], [0, 0, 0, 0]);
  const b1 = new Uint8Array(1).fill(0xaa);
  d.readMmio(0, b1);
  assert.deepEqual([...b1], [0]);
  d.writeMmio(2, Uint8Array.of(0x20, 0x03, 0, 0));
  d.writeMmio(3, Uint8Array.of(0x20, 0x03));
  assert.equal(d.read(DISPI_INDEX.XRES), 0);
  d.writeMmio(2, Uint8Array.of(0x20, 0x03));
  assert.equal(d.read(DISPI_INDEX.XRES), 800);
  // past the eleventh register
  assert.equal(d.read(11), 0);
  d.write(11, 5);
  assert.equal(d.read(11), 0);
});

test('dispi: GETCAPS makes XRES, YRES and BPP read the maxima', () => {
  const d = new DispiRegisters({ memoryBytes: 16 * MB, maxWidth: 1920, maxHeight: 1440 });
  d.write(DISPI_INDEX.XRES, 640);
  d.write(DISPI_INDEX.ENABLE, DISPI_ENABLE.GETCAPS);
  assert.deepEqual([d.read(DISPI_INDEX.XRES), d.read(DISPI_INDEX.YRES), d.read(DISPI_INDEX.BPP)], [1920, 1440, 32]);
  d.write(DISPI_INDEX.ENABLE, 0);
  assert.equal(d.read(DISPI_INDEX.XRES), 640);
  const unlimited = new DispiRegisters({ memoryBytes: 64 * MB });
  unlimited.write(DISPI_INDEX.ENABLE, DISPI_ENABLE.GETCAPS);
  assert.equal(unlimited.read(DISPI_INDEX.XRES), 16000);
});

test('dispi: plane is ENOENT until a mode is enabled, then what bochs programmed', () => {
  const d = new DispiRegisters({ memoryBytes: 4 * MB });
  assert.throws(() => d.plane(), code('ENOENT'));
  bochsSetMode(d, 800, 600, 4 * MB);
  assert.deepEqual(d.plane(), { format: 'XRGB8888', width: 800, height: 600, stride: 3200, offset: 0 });
  // panning as bochs_hw_setbase does: a wider virtual line and offsets
  d.write(DISPI_INDEX.VIRT_WIDTH, 1024);
  d.write(DISPI_INDEX.X_OFFSET, 8);
  d.write(DISPI_INDEX.Y_OFFSET, 2);
  assert.deepEqual(d.plane(), { format: 'XRGB8888', width: 800, height: 600, stride: 4096, offset: 8 * 4 + 2 * 4096 });
  d.write(DISPI_INDEX.ENABLE, 0);
  assert.throws(() => d.plane(), code('ENOENT'));
});

test('dispi: modes that cannot be shown are EINVAL', () => {
  const d = new DispiRegisters({ memoryBytes: 4 * MB });
  bochsSetMode(d, 800, 600, 4 * MB);
  d.write(DISPI_INDEX.BPP, 16);
  assert.throws(() => d.plane(), code('EINVAL'));
  bochsSetMode(d, 32, 600, 4 * MB);
  assert.throws(() => d.plane(), code('EINVAL'));
  bochsSetMode(d, 1920, 1080, 4 * MB);
  assert.throws(() => d.plane(), code('EINVAL'), 'past video memory');
  bochsSetMode(d, 800, 600, 4 * MB);
  d.write(DISPI_INDEX.Y_OFFSET, 1200);
  assert.throws(() => d.plane(), code('EINVAL'), 'panned past video memory');
});

test('dispi: memory size must be whole 64 KiB units', () => {
  assert.throws(() => new DispiRegisters({ memoryBytes: 1000 }), code('EINVAL'));
  assert.throws(() => new DispiRegisters({ memoryBytes: 0 }), code('EINVAL'));
  assert.throws(() => new DispiRegisters({ memoryBytes: 4096 * MB }), code('EINVAL'));
});
