/**
 * The mbochs device: enough of QEMU's stdvga, without the legacy VGA, for
 * the Linux guest's `bochs` DRM driver to bind (the kernel's
 * samples/vfio-mdev/mbochs; it looks like `qemu -device secondary-vga`).
 *
 * - 1234:1111, subsystem 1af4:1100, revision 1 (no QEMU extended
 *   registers), class 0x038000.
 * - BAR0: video memory, 32-bit prefetchable, shared with the client
 *   through sparse mmap. bochs checks its size against VIDEO_MEMORY_64K.
 * - BAR2: 4 KiB of registers. 0x000-0x3ff the monitor's EDID, 0x400-0x41f
 *   VGA ports (only blanking goes there: ignored), 0x500-0x515 the dispi
 *   registers; everything else reads 0 and ignores writes.
 * - Region 9: the EDID region (type GFX, subtype EDID) through which the
 *   host changes the EDID the guest reads at BAR2 0x000.
 *
 * Reset puts the dispi registers back (display off); video memory and the
 * EDID are kept, as the kernel sample keeps them.
 */
import type { DeviceOptions } from '../../core/device.js';
import { VfioError } from '../../base/errors.js';
import { MigrationFlags, PciRegion, RegionFlags, RegionType, type DeviceInfo, type RegionInfo } from '../../base/uapi.js';
import { copyInTurns, FieldReader, FieldWriter, type MigStreamWriter } from '../../core/migration-stream.js';
import type { MappedMemory } from '../../native/memory.js';
import { VfioPciDevice, type PciDeviceOptions, type PciMigrationSpec } from '../../pci/pci-device.js';
import type { DisplaySource } from '../display/display-source.js';
import { offerFramebuffer } from '../display/framebuffer-region.js';
import type { DisplayPlane } from '../display/plane.js';
import { nameAccess, type RegisterField } from '../../pci/register-names.js';
import { DISPI_INDEX, DISPI_MMIO_OFFSET, DISPI_MMIO_SIZE, DispiRegisters } from './dispi.js';
import { EDID_BLOB_MAX, EDID_REGION_SIZE, EdidRegion } from './edid-region.js';

const MBOCHS_PCI = {
  VENDOR_ID: 0x1234,
  DEVICE_ID: 0x1111,
  SUBSYSTEM_VENDOR_ID: 0x1af4,
  SUBSYSTEM_ID: 0x1100,
  REVISION: 0x01,
  /** base class 0x03 display, subclass 0x80 other */
  CLASS_CODE: 0x038000,
} as const;

/** Size of BAR2, the register BAR. */
const MBOCHS_MMIO_SIZE = 4096;
/** Region index of the EDID region: the first after the nine of vfio-pci. */
export const MBOCHS_EDID_REGION = PciRegion.NUM;

/** The mbochs migration stream: version, record tags, room for what is not video memory. */
export const MBOCHS_STREAM = { MAJOR: 1, MINOR: 0, DISPI: 16, EDID: 17, VRAM: 18, OVERHEAD: 64 * 1024 } as const;

/** The mode the generated EDID prefers, when the type allows it. */
const PREFERRED = { width: 1024, height: 768 };

/** The size of one mbochs device: its video memory and the largest mode it shows. */
export interface MbochsDeviceOptions extends DeviceOptions {
  /** Video memory (BAR0) in bytes: a power of two, 4 MiB at least (bochs ignores smaller). */
  memoryBytes: number;
  /** Largest mode the device shows (EDID max_xres/max_yres); 0 for no limit. */
  maxWidth: number;
  maxHeight: number;
  /** Called once when the device is released (gives its memory back to the pool). */
  onRelease?: () => void;
  /** A takeover: the previous daemon's video memory, which clients have mapped (index 0). */
  barMemory?: PciDeviceOptions['barMemory'];
}

/** One mbochs adapter: video memory, dispi registers and an EDID (see the module comment). */
export class MbochsDevice extends VfioPciDevice implements DisplaySource {
  readonly dispi: DispiRegisters;
  readonly edid: EdidRegion;
  readonly #vram: MappedMemory;

  constructor(options: MbochsDeviceOptions) {
    const { memoryBytes, maxWidth, maxHeight, ...device } = options;
    if (!Number.isSafeInteger(memoryBytes) || memoryBytes < 4 * 1024 * 1024) {
      throw new VfioError('EINVAL', `mbochs needs at least 4 MiB of video memory, not ${memoryBytes} bytes`);
    }
    super({
      ...device,
      header: {
        vendorId: MBOCHS_PCI.VENDOR_ID,
        deviceId: MBOCHS_PCI.DEVICE_ID,
        subsystemVendorId: MBOCHS_PCI.SUBSYSTEM_VENDOR_ID,
        subsystemId: MBOCHS_PCI.SUBSYSTEM_ID,
        revision: MBOCHS_PCI.REVISION,
        classCode: MBOCHS_PCI.CLASS_CODE,
      },
      bars: [{ kind: 'mem32', size: memoryBytes, prefetchable: true }, undefined, { kind: 'mem32', size: MBOCHS_MMIO_SIZE }],
    });
    this.dispi = new DispiRegisters({ memoryBytes, maxWidth, maxHeight });
    this.edid = new EdidRegion({
      maxWidth,
      maxHeight,
      preferred: {
        width: maxWidth ? Math.min(maxWidth, PREFERRED.width) : PREFERRED.width,
        height: maxHeight ? Math.min(maxHeight, PREFERRED.height) : PREFERRED.height,
      },
    });
    this.#vram = this.backBar(0, `mbochs-${this.name}`);
  }

  /** Video memory, all of BAR0. */
  get framebuffer(): Uint8Array {
    return this.#vram.bytes;
  }

  /** Size of the video memory (BAR0). */
  get memoryBytes(): number {
    return this.dispi.memoryBytes;
  }

  /**
   * What the guest programmed through the dispi registers: ENOENT while no
   * mode is enabled, EINVAL for one that cannot be shown.
   */
  queryPlane(): DisplayPlane {
    try {
      return this.dispi.plane();
    } catch (err) {
      if (err instanceof VfioError) throw new VfioError(err.code, `${this.name}: ${err.message}`);
      throw err;
    }
  }

  // ---- ops ------------------------------------------------------------------

  override getInfo(): DeviceInfo {
    return { ...super.getInfo(), numRegions: MBOCHS_EDID_REGION + 1 };
  }

  override getRegionInfo(index: number): RegionInfo {
    if (index === MBOCHS_EDID_REGION) {
      return {
        index,
        flags: RegionFlags.READ | RegionFlags.WRITE,
        size: EDID_REGION_SIZE,
        type: { type: RegionType.GFX, subtype: RegionType.GFX_EDID_SUBTYPE },
      };
    }
    const info = super.getRegionInfo(index);
    return index === PciRegion.BAR0 ? offerFramebuffer(info) : info;
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void {
    if (index === MBOCHS_EDID_REGION) this.edid.read(offset, dest);
    else super.regionRead(index, offset, dest);
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void {
    if (index === MBOCHS_EDID_REGION) this.edid.write(offset, src);
    else super.regionWrite(index, offset, src);
  }

  protected override barRead(bar: number, offset: number, dest: Uint8Array): void {
    void bar; // BAR2 only: BAR0 is backed by memory
    if (offset < EDID_BLOB_MAX) {
      // An access reaching past the window reads zeros there.
      dest.fill(0);
      const inWindow = dest.subarray(0, Math.min(dest.length, EDID_BLOB_MAX - offset));
      this.edid.readGuestWindow(offset, inWindow);
    } else if (isDispi(offset)) {
      this.dispi.readMmio(offset - DISPI_MMIO_OFFSET, dest);
    } else {
      dest.fill(0);
    }
  }

  protected override barWrite(bar: number, offset: number, src: Uint8Array): void {
    void bar;
    if (isDispi(offset)) this.dispi.writeMmio(offset - DISPI_MMIO_OFFSET, src);
  }

  /** `dispi XRES`, `EDID+0x10`, `VGA ports+4` in BAR2. */
  protected override barRegisterName(bar: number, offset: number, size: number): string | undefined {
    if (bar !== 2) return undefined;
    if (isDispi(offset)) return nameAccess(DISPI_FIELDS, offset, size);
    if (offset < EDID_BLOB_MAX) return `EDID+0x${offset.toString(16)}`;
    if (offset >= VGA_PORTS && offset < DISPI_MMIO_OFFSET) return `VGA ports+0x${(offset - VGA_PORTS).toString(16)}`;
    return undefined;
  }

  override regionName(index: number): string {
    return index === MBOCHS_EDID_REGION ? 'EDID region' : super.regionName(index);
  }

  protected override resetFunction(): void {
    this.dispi.reset();
  }

  // ---- migration: STOP_COPY of dispi registers, EDID and video memory --------
  // The stream's parameters are the type's size (video memory, largest
  // mode): a stream of another type is refused. The plane follows from the
  // dispi registers. A takeover's stream (`handover`) leaves video memory
  // out: the next daemon adopts the memory itself, which clients have
  // mapped and may be writing to meanwhile.

  protected override migrationSpec(): PciMigrationSpec {
    return {
      kind: 'mbochs',
      major: MBOCHS_STREAM.MAJOR,
      minor: MBOCHS_STREAM.MINOR,
      params: new FieldWriter().u64(this.memoryBytes).u32(this.edid.maxWidth).u32(this.edid.maxHeight).take(),
      tags: [MBOCHS_STREAM.DISPI, MBOCHS_STREAM.EDID, MBOCHS_STREAM.VRAM],
      flags: MigrationFlags.STOP_COPY,
      maxStreamBytes: this.#vram.bytes.length + MBOCHS_STREAM.OVERHEAD,
    };
  }

  protected override saveMigrationRecords(w: MigStreamWriter): void {
    const regs = this.dispi.saveState();
    const d = new FieldWriter();
    for (const r of regs) d.u16(r);
    const e = this.edid.saveState();
    w.record(MBOCHS_STREAM.DISPI, d.take());
    w.record(MBOCHS_STREAM.EDID, new FieldWriter().u32(e.size).u32(e.link).bytes(e.blob).take());
    // Copied piece by piece as the stream is read: the device is stopped.
    if (!this.handover) w.lazyRecord(MBOCHS_STREAM.VRAM, this.#vram.bytes);
  }

  protected override loadMigrationRecords(records: ReadonlyMap<number, Uint8Array>): () => Promise<void> {
    const need = (tag: number, what: string): Uint8Array => {
      const r = records.get(tag);
      if (r === undefined) throw new VfioError('EBADMSG', `the mbochs migration stream has no ${what}`);
      return r;
    };
    const d = new FieldReader(need(MBOCHS_STREAM.DISPI, 'dispi registers'), 'mbochs dispi');
    const regs = Uint16Array.from({ length: DISPI_MMIO_SIZE / 2 }, () => d.u16());
    d.done();
    const e = new FieldReader(need(MBOCHS_STREAM.EDID, 'EDID'), 'mbochs EDID');
    const edid = { size: e.u32(), link: e.u32(), blob: e.bytes(EDID_BLOB_MAX) };
    e.done();
    EdidRegion.checkState(edid);
    const vram = this.handover ? null : need(MBOCHS_STREAM.VRAM, 'video memory');
    if (vram !== null && vram.length !== this.#vram.bytes.length) {
      throw new VfioError('EBADMSG', `the mbochs migration stream has ${vram.length} bytes of video memory, this adapter ${this.#vram.bytes.length}`);
    }
    // The dispi check may refuse (another adapter's registers): before anything changes.
    const probe = new DispiRegisters({ memoryBytes: this.memoryBytes, maxWidth: this.dispi.maxWidth, maxHeight: this.dispi.maxHeight });
    probe.restoreState(regs);
    return () => {
      this.dispi.restoreState(regs);
      this.edid.restoreState(edid);
      return vram === null ? Promise.resolve() : copyInTurns(this.#vram.bytes, vram);
    };
  }
}

/** Where BAR2's VGA ports start (0x400: blanking only). */
const VGA_PORTS = 0x400;

/** The dispi registers, named as bochs names them, at their BAR2 offsets. */
const DISPI_FIELDS: readonly RegisterField[] = Object.entries(DISPI_INDEX)
  .map(([name, index]) => ({ offset: DISPI_MMIO_OFFSET + 2 * index, size: 2, name: `dispi ${name}` }))
  .sort((a, b) => a.offset - b.offset);

function isDispi(offset: number): boolean {
  return offset >= DISPI_MMIO_OFFSET && offset < DISPI_MMIO_OFFSET + DISPI_MMIO_SIZE;
}
