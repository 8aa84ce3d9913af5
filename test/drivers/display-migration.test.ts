/**
 * mdpy and mbochs migration (STOP_COPY): a round trip compared field by
 * field (dispi registers, EDID, the plane, video memory or framebuffer,
 * config space), and bad streams refused with their errno (another type of
 * the same driver, another driver, damaged, truncated, another version)
 * while the destination stays as it was and loads a good stream next.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FieldWriter, MigState, MigStreamWriter, PciRegion, type DeviceFile } from '../../src/core/index.js';
import { MBOCHS_EDID_REGION, MBOCHS_STREAM, MbochsDevice } from '../../src/drivers/mbochs/mbochs-device.js';
import { EDID_BLOB_OFFSET, EDID_REG, LINK_STATE } from '../../src/drivers/mbochs/edid-region.js';
import { DISPI_ENABLE, DISPI_INDEX, DISPI_MMIO_OFFSET } from '../../src/drivers/mbochs/dispi.js';
import { MdpyDevice } from '../../src/drivers/mdpy/mdpy-device.js';
import { filePeer, migrate } from '../../src/vfio-user/index.js';
import { fastCore, isCode, readBytes, registerAndBind, writeLe } from './display-device-helpers.js';

const MIB = 1 << 20;
/** BAR2, the register BAR. */
const MBOCHS_MMIO_BAR = 2;
const core = fastCore();
let serial = 0;

async function mbochs(memoryBytes = 4 * MIB, max = { w: 800, h: 600 }): Promise<{ dev: MbochsDevice; file: DeviceFile }> {
  const dev = new MbochsDevice({ name: `mbochs-mig-${serial++}`, core, memoryBytes, maxWidth: max.w, maxHeight: max.h });
  return { dev, file: await registerAndBind(dev) };
}

async function mdpy(width = 640, height = 480): Promise<{ dev: MdpyDevice; file: DeviceFile }> {
  const dev = new MdpyDevice({ name: `mdpy-mig-${serial++}`, core, width, height });
  return { dev, file: await registerAndBind(dev) };
}

const dispi = (f: DeviceFile, index: number, value: number) => writeLe(f, MBOCHS_MMIO_BAR, DISPI_MMIO_OFFSET + 2 * index, 2, value);

/** What a guest's bochs driver does: 640x480x32 at an offset, a pattern in video memory. */
async function drawOnMbochs(f: DeviceFile, dev: MbochsDevice): Promise<void> {
  await dispi(f, DISPI_INDEX.XRES, 640);
  await dispi(f, DISPI_INDEX.YRES, 480);
  await dispi(f, DISPI_INDEX.BPP, 32);
  await dispi(f, DISPI_INDEX.VIRT_WIDTH, 700);
  await dispi(f, DISPI_INDEX.Y_OFFSET, 2);
  await dispi(f, DISPI_INDEX.ENABLE, DISPI_ENABLE.ENABLED | DISPI_ENABLE.LFB_ENABLED);
  for (let i = 0; i < dev.framebuffer.length; i += 4099) dev.framebuffer[i] = (i * 7) & 0xff;
  // The host changes the EDID and unplugs the monitor.
  await f.regionWrite(MBOCHS_EDID_REGION, EDID_BLOB_OFFSET + 8, Uint8Array.of(0xde, 0xad));
  await writeLe(f, MBOCHS_EDID_REGION, EDID_REG.LINK_STATE, 4, LINK_STATE.DOWN);
}

async function stream(f: DeviceFile): Promise<Uint8Array> {
  await f.setMigrationState(MigState.STOP_COPY);
  const parts: Uint8Array[] = [];
  for (let c = await f.migrationDataRead(MIB); ; c = await f.migrationDataRead(MIB)) {
    parts.push(c);
    if (c.length < MIB) break;
  }
  await f.setMigrationState(MigState.RUNNING);
  return Buffer.concat(parts);
}

async function load(f: DeviceFile, s: Uint8Array): Promise<void> {
  if ((await f.migrationState()) !== MigState.RESUMING) await f.setMigrationState(MigState.RESUMING);
  for (let at = 0; at < s.length; at += MIB) await f.migrationDataWrite(s.subarray(at, at + MIB));
  await f.setMigrationState(MigState.RUNNING);
}

const config = (f: DeviceFile) => readBytes(f, PciRegion.CONFIG, 0, 256);

function header(kind: string, params: Uint8Array, major = 1): Uint8Array {
  return new MigStreamWriter().begin({ kind, major, minor: 0, params }).end().take();
}

describe('mbochs migration', () => {
  it('declares STOP_COPY only', async () => {
    assert.equal(await (await mbochs()).file.migrationFlags(), 1);
  });

  it('round trip: dispi registers, EDID, plane, video memory and config space, field by field', async () => {
    const src = await mbochs();
    const dst = await mbochs();
    await drawOnMbochs(src.file, src.dev);
    const stats = await migrate(filePeer(src.file), filePeer(dst.file));
    assert.ok(stats.stopCopyBytes > 4 * MIB);
    assert.deepEqual([...dst.dev.dispi.saveState()], [...src.dev.dispi.saveState()]);
    assert.deepEqual(dst.dev.edid.saveState(), src.dev.edid.saveState());
    assert.equal(dst.dev.edid.linkUp, false);
    assert.deepEqual(dst.dev.queryPlane(), src.dev.queryPlane());
    assert.deepEqual(dst.dev.queryPlane(), { format: 'XRGB8888', width: 640, height: 480, stride: 2800, offset: 5600 });
    assert.ok(Buffer.from(dst.dev.framebuffer).equals(Buffer.from(src.dev.framebuffer)), 'video memory, byte for byte');
    assert.deepEqual(await config(dst.file), await config(src.file));
    // The guest's view through BAR2 agrees too.
    assert.deepEqual([...(await readBytes(dst.file, MBOCHS_MMIO_BAR, DISPI_MMIO_OFFSET + 2 * DISPI_INDEX.XRES, 2))], [640 & 0xff, 640 >> 8]);
  });

  const refusals: Array<[string, () => Promise<Uint8Array>, string]> = [
    ['of another type (mbochs-medium into mbochs-small)', async () => stream((await mbochs(16 * MIB, { w: 1920, h: 1440 })).file), 'EINVAL'],
    ['of another driver (mdpy into mbochs)', async () => stream((await mdpy()).file), 'EINVAL'],
    [
      'of another version',
      async () =>
        header(
          'mbochs',
          new FieldWriter()
            .u64(4 * MIB)
            .u32(800)
            .u32(600)
            .take(),
          2,
        ),
      'EPROTO',
    ],
    [
      'damaged (video memory)',
      async () => {
        const s = await stream((await mbochs()).file);
        s[s.length - 1000]! ^= 0x10;
        return s;
      },
      'EBADMSG',
    ],
    ['truncated', async () => (await stream((await mbochs()).file)).subarray(0, 3 * MIB), 'ENODATA'],
  ];
  for (const [what, make, code] of refusals) {
    it(`refuses a stream ${what} with ${code}; the destination is unchanged and loads a good one next`, async () => {
      const src = await mbochs();
      const dst = await mbochs();
      await drawOnMbochs(src.file, src.dev);
      const before = { dispi: [...dst.dev.dispi.saveState()], vram: Buffer.from(dst.dev.framebuffer), edid: dst.dev.edid.saveState() };
      await assert.rejects(load(dst.file, await make()), isCode(code));
      assert.equal(await dst.file.migrationState(), MigState.RESUMING);
      assert.deepEqual([...dst.dev.dispi.saveState()], before.dispi);
      assert.deepEqual(dst.dev.edid.saveState(), before.edid);
      assert.ok(Buffer.from(dst.dev.framebuffer).equals(before.vram));
      await load(dst.file, await stream(src.file));
      assert.deepEqual(dst.dev.queryPlane(), src.dev.queryPlane());
    });
  }

  it('refuses dispi registers of an adapter with other video memory (EINVAL) and an impossible EDID (EBADMSG)', async () => {
    const dst = await mbochs();
    const s = await stream((await mbochs()).file);
    const pci = recordsOf(s).get(2)!;
    const make = (regs: number[], edid: { size: number; link: number }) => {
      const d = new FieldWriter();
      for (const r of regs) d.u16(r);
      return new MigStreamWriter()
        .begin({
          kind: 'mbochs',
          major: 1,
          minor: 0,
          params: new FieldWriter()
            .u64(4 * MIB)
            .u32(800)
            .u32(600)
            .take(),
        })
        .record(2, pci)
        .record(MBOCHS_STREAM.DISPI, d.take())
        .record(MBOCHS_STREAM.EDID, new FieldWriter().u32(edid.size).u32(edid.link).bytes(new Uint8Array(1024)).take())
        .record(MBOCHS_STREAM.VRAM, new Uint8Array(4 * MIB))
        .end()
        .take();
    };
    const regs = [0xb0c5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64];
    await assert.rejects(
      load(
        dst.file,
        make(
          regs.map((r, i) => (i === 10 ? 128 : r)),
          { size: 128, link: 1 },
        ),
      ),
      isCode('EINVAL'),
    );
    await assert.rejects(load(dst.file, make(regs, { size: 2000, link: 1 })), isCode('EBADMSG'));
    await assert.rejects(load(dst.file, make(regs, { size: 128, link: 7 })), isCode('EBADMSG'));
    await assert.rejects(
      load(
        dst.file,
        make(
          regs.map((r, i) => (i === 0 ? 0x1234 : r)),
          { size: 128, link: 1 },
        ),
      ),
      isCode('EBADMSG'),
    );
    await load(dst.file, make(regs, { size: 128, link: 2 }));
    assert.equal(dst.dev.edid.linkUp, false);
  });
});

describe('mdpy migration', () => {
  it('round trip: framebuffer and config space (the vendor capability with the mode)', async () => {
    const src = await mdpy();
    const dst = await mdpy();
    src.dev.framebuffer.fill(0x33, 1000, 50_000);
    await migrate(filePeer(src.file), filePeer(dst.file));
    assert.ok(Buffer.from(dst.dev.framebuffer).equals(Buffer.from(src.dev.framebuffer)));
    assert.deepEqual(await config(dst.file), await config(src.file));
    assert.deepEqual(dst.dev.queryPlane(), src.dev.queryPlane());
  });

  it('refuses a stream of another mode (EINVAL), of mbochs (EINVAL), damaged (EBADMSG); the framebuffer stays', async () => {
    const dst = await mdpy();
    const before = Buffer.from(dst.dev.framebuffer);
    await assert.rejects(load(dst.file, await stream((await mdpy(800, 600)).file)), isCode('EINVAL'));
    await assert.rejects(load(dst.file, await stream((await mbochs()).file)), isCode('EINVAL'));
    const s = await stream((await mdpy()).file);
    s[s.length - 100]! ^= 1;
    await assert.rejects(load(dst.file, s), isCode('EBADMSG'));
    assert.ok(Buffer.from(dst.dev.framebuffer).equals(before));
  });

  it("a resuming device holds at most its stream size of a client's data (ENOSPC); a foreign start is refused at once", async () => {
    const dst = await mdpy(64, 64);
    await dst.file.setMigrationState(MigState.RESUMING);
    const start = new MigStreamWriter().begin({ kind: 'mdpy', major: 1, minor: 0, params: new FieldWriter().u32(64).u32(64).take() }).take();
    await dst.file.migrationDataWrite(start);
    await assert.rejects(async () => {
      for (let i = 0; i < 100; i++) await dst.file.migrationDataWrite(new Uint8Array(MIB));
    }, isCode('ENOSPC'));
    // Leaving RESUMING with that incomplete stream fails and discards it.
    await assert.rejects(dst.file.setMigrationState(MigState.STOP), isCode('ENODATA'));
    // A foreign stream is refused at its header, before the bulk arrives.
    const other = new MigStreamWriter().begin({ kind: 'mdpy', major: 1, minor: 0, params: new FieldWriter().u32(640).u32(480).take() }).take();
    await assert.rejects(async () => dst.file.migrationDataWrite(Uint8Array.from([...other, ...new Uint8Array(MIB)])), isCode('EINVAL'));
    await assert.rejects(async () => dst.file.migrationDataWrite(Uint8Array.of(1, 2, 3)), isCode('EBADMSG'));
  });
});

/** A stream's records by tag (magic, then tag|len|payload|crc). */
function recordsOf(s: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const view = new DataView(s.buffer, s.byteOffset);
  for (let at = 8; at < s.length;) {
    const tag = view.getUint16(at, true);
    const len = view.getUint32(at + 4, true);
    out.set(tag, s.slice(at + 8, at + 8 + len));
    at += 12 + len;
  }
  return out;
}
