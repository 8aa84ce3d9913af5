/**
 * The mdpy device: the simplest display there is (the kernel's
 * samples/vfio-mdev/mdpy). A fixed-mode XRGB8888 framebuffer in BAR0, and
 * its format, width and height in a read-only vendor capability at config
 * offset 0x40, where a guest driver would look them up:
 *
 *     0x40  cap id 0x09, next 0, length 0x10, pad
 *     0x44  format  (DRM fourcc, XRGB8888)
 *     0x48  width
 *     0x4c  height
 *
 * No guest kernel ships a driver for it, so a guest draws by writing BAR0
 * itself. The framebuffer starts as a grey ramp from black at the top, as
 * the kernel sample's does, and reset paints it again.
 */
import type { DeviceOptions } from '../../core/device.js';
import { VfioError } from '../../base/errors.js';
import { MigrationFlags, PciRegion, type RegionInfo } from '../../base/uapi.js';
import { copyInTurns, FieldWriter, type MigStreamWriter } from '../../core/migration-stream.js';
import type { MappedMemory } from '../../native/memory.js';
import { VfioPciDevice, type PciDeviceOptions, type PciMigrationSpec } from '../../pci/pci-device.js';
import type { DisplaySource } from '../display/display-source.js';
import { offerFramebuffer } from '../display/framebuffer-region.js';
import { bytesPerPixel, drmFormatOf, type DisplayPlane } from '../display/plane.js';

/** Identity in config space (mdpy-defs.h): Red Hat's 1b36:000f, QEMU's subsystem. */
const MDPY_PCI = {
  VENDOR_ID: 0x1b36,
  DEVICE_ID: 0x000f,
  SUBSYSTEM_VENDOR_ID: 0x1af4,
  SUBSYSTEM_ID: 0x1100,
  REVISION: 0x01,
  /** base class 0x03 display, subclass 0x80 other */
  CLASS_CODE: 0x038000,
} as const;

/** Config-space offsets of the vendor capability and its dwords. */
export const MDPY_VENDORCAP = {
  OFFSET: 0x40,
  SIZE: 0x10,
  FORMAT: 0x44,
  WIDTH: 0x48,
  HEIGHT: 0x4c,
} as const;

/** The mdpy migration stream: version, record tag, room for what is not the framebuffer. */
export const MDPY_STREAM = { MAJOR: 1, MINOR: 0, FRAMEBUFFER: 16, OVERHEAD: 64 * 1024 } as const;

const FORMAT = 'XRGB8888';
const MAX_DIMENSION = 8192;

/** The fixed mode of one mdpy device, 1..8192 pixels each way. */
export interface MdpyDeviceOptions extends DeviceOptions {
  width: number;
  height: number;
  /** Called once when the device is released (gives its slot back to the driver). */
  onRelease?: () => void;
  /** A takeover: the previous daemon's framebuffer, which clients have mapped (index 0). */
  barMemory?: PciDeviceOptions['barMemory'];
}

/** One mdpy display: a framebuffer in BAR0 and its mode in a vendor capability. */
export class MdpyDevice extends VfioPciDevice implements DisplaySource {
  readonly width: number;
  readonly height: number;
  readonly #fb: MappedMemory;

  constructor(options: MdpyDeviceOptions) {
    const { width, height, ...device } = options;
    for (const [what, v] of [
      ['width', width],
      ['height', height],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > MAX_DIMENSION) {
        throw new VfioError('EINVAL', `an mdpy ${what} must be 1..${MAX_DIMENSION}, not ${v}`);
      }
    }
    super({
      ...device,
      header: {
        vendorId: MDPY_PCI.VENDOR_ID,
        deviceId: MDPY_PCI.DEVICE_ID,
        subsystemVendorId: MDPY_PCI.SUBSYSTEM_VENDOR_ID,
        subsystemId: MDPY_PCI.SUBSYSTEM_ID,
        revision: MDPY_PCI.REVISION,
        classCode: MDPY_PCI.CLASS_CODE,
      },
      // The BAR is the frame rounded up to a power of two, as PCI wants.
      bars: [{ kind: 'mem32', size: nextPowerOfTwo(width * height * bytesPerPixel(FORMAT)), prefetchable: true }],
      capabilities: { vendor: vendorCapability(width, height) },
    });
    this.width = width;
    this.height = height;
    this.#fb = this.backBar(0, `mdpy-${this.name}`);
    // Memory handed over holds what the guest drew: keep it.
    if (!this.barAdopted(0)) this.#paintRamp();
  }

  /** The whole of BAR0. */
  get framebuffer(): Uint8Array {
    return this.#fb.bytes;
  }

  /** Always the type's mode: mdpy has nothing to program. */
  queryPlane(): DisplayPlane {
    return { format: FORMAT, width: this.width, height: this.height, stride: this.width * bytesPerPixel(FORMAT), offset: 0 };
  }

  override getRegionInfo(index: number): RegionInfo {
    const info = super.getRegionInfo(index);
    return index === PciRegion.BAR0 ? offerFramebuffer(info) : info;
  }

  protected override resetFunction(): void {
    this.#paintRamp();
  }

  // ---- migration: STOP_COPY of the framebuffer ------------------------------
  // The mode is the type's (checked through the stream's parameters) and the
  // vendor capability read-only config space (checked with the function's
  // state); what moves is the function's state and the framebuffer.

  protected override migrationSpec(): PciMigrationSpec {
    return {
      kind: 'mdpy',
      major: MDPY_STREAM.MAJOR,
      minor: MDPY_STREAM.MINOR,
      params: new FieldWriter().u32(this.width).u32(this.height).take(),
      tags: [MDPY_STREAM.FRAMEBUFFER],
      flags: MigrationFlags.STOP_COPY,
      maxStreamBytes: this.#fb.bytes.length + MDPY_STREAM.OVERHEAD,
    };
  }

  // A takeover's stream (`handover`) leaves the framebuffer out: the next
  // daemon adopts the memory itself, which clients have mapped.
  protected override saveMigrationRecords(w: MigStreamWriter): void {
    // Copied piece by piece as the stream is read: the device is stopped.
    if (!this.handover) w.lazyRecord(MDPY_STREAM.FRAMEBUFFER, this.#fb.bytes);
  }

  protected override loadMigrationRecords(records: ReadonlyMap<number, Uint8Array>): () => Promise<void> {
    if (this.handover) return () => Promise.resolve();
    const fb = records.get(MDPY_STREAM.FRAMEBUFFER);
    if (fb === undefined) throw new VfioError('EBADMSG', 'the mdpy migration stream has no framebuffer');
    if (fb.length !== this.#fb.bytes.length) {
      throw new VfioError('EBADMSG', `the mdpy migration stream's framebuffer has ${fb.length} bytes, BAR0 ${this.#fb.bytes.length}`);
    }
    return () => copyInTurns(this.#fb.bytes, fb);
  }

  /** Line y gets grey level y * 255 / height in every byte (mdpy_reset). */
  #paintRamp(): void {
    const stride = this.width * bytesPerPixel(FORMAT);
    const fb = this.#fb.bytes;
    for (let y = 0; y < this.height; y++) fb.fill(Math.floor((y * 255) / this.height), y * stride, (y + 1) * stride);
  }
}

/** The 13 bytes after the capability header: a pad byte, then format, width, height (LE). */
function vendorCapability(width: number, height: number): Uint8Array {
  const data = new Uint8Array(MDPY_VENDORCAP.SIZE - 3);
  const view = new DataView(data.buffer);
  view.setUint32(MDPY_VENDORCAP.FORMAT - MDPY_VENDORCAP.OFFSET - 3, drmFormatOf(FORMAT), true);
  view.setUint32(MDPY_VENDORCAP.WIDTH - MDPY_VENDORCAP.OFFSET - 3, width, true);
  view.setUint32(MDPY_VENDORCAP.HEIGHT - MDPY_VENDORCAP.OFFSET - 3, height, true);
  return data;
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}
