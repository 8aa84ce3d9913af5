/**
 * The EDID region of a display device (VFIO_REGION_TYPE_GFX /
 * VFIO_REGION_SUBTYPE_GFX_EDID), laid out as include/uapi/linux/vfio.h's
 * struct vfio_region_gfx_edid: six 32-bit registers at the start, the blob
 * further in. The host side (the VMM) uses it to plug a monitor in and out
 * and to change its EDID: link down, write blob and size, link up. The
 * guest sees the blob through the device's own registers while the link is
 * up.
 *
 * Unlike the kernel sample, which shows the guest nothing until a VMM
 * writes an EDID, the region starts with the link up and a generated EDID:
 * QEMU's vfio-user-pci has no display to drive it, and the guest's DRM
 * driver takes its mode from it.
 */
import { VfioError } from '../../base/errors.js';
import { buildEdid } from '../display/edid.js';

export const EDID_REGION_SIZE = 4096;
/** Where the blob starts in the region (edid_offset). */
export const EDID_BLOB_OFFSET = 0x800;
/** How big the blob may be (edid_max_size): what fits the guest's 0x000-0x3ff window. */
export const EDID_BLOB_MAX = 0x400;

/** Byte offsets of the registers (each 32-bit). */
export const EDID_REG = {
  EDID_OFFSET: 0x00,
  EDID_MAX_SIZE: 0x04,
  EDID_SIZE: 0x08,
  MAX_XRES: 0x0c,
  MAX_YRES: 0x10,
  LINK_STATE: 0x14,
} as const;
const REGS_END = 0x18;

export const LINK_STATE = { UP: 1, DOWN: 2 } as const;

/** What the EDID region reports and the blob it starts with. */
export interface EdidRegionOptions {
  /** Largest mode the device can show (max_xres/max_yres); 0 for no limit. */
  maxWidth: number;
  maxHeight: number;
  /** The initial blob; one built for `preferred` when omitted. */
  edid?: Uint8Array;
  /** Preferred mode of the generated EDID. */
  preferred?: { width: number; height: number };
}

/** The EDID region's registers and blob: the host writes them, the guest reads the blob. */
/** An EDID region's state: the whole blob, its size, the link state. */
export interface EdidState {
  blob: Uint8Array;
  size: number;
  link: number;
}

export class EdidRegion {
  readonly maxWidth: number;
  readonly maxHeight: number;
  readonly #blob = new Uint8Array(EDID_BLOB_MAX);
  #size: number;
  #link: number = LINK_STATE.UP;

  constructor(options: EdidRegionOptions) {
    this.maxWidth = options.maxWidth;
    this.maxHeight = options.maxHeight;
    const edid =
      options.edid ??
      buildEdid({
        width: options.preferred?.width ?? 1024,
        height: options.preferred?.height ?? 768,
        maxWidth: options.maxWidth || undefined,
        maxHeight: options.maxHeight || undefined,
      });
    if (edid.length > EDID_BLOB_MAX) {
      throw new VfioError('EINVAL', `an EDID of ${edid.length} bytes exceeds the ${EDID_BLOB_MAX}-byte blob`);
    }
    this.#blob.set(edid);
    this.#size = edid.length;
  }

  /** True while the monitor is plugged in (link_state UP). */
  get linkUp(): boolean {
    return this.#link === LINK_STATE.UP;
  }

  /** The current blob (edid_size bytes of it). */
  get edid(): Uint8Array {
    return this.#blob.slice(0, this.#size);
  }

  /** What the host set (blob, its size, the link), for migration. */
  saveState(): EdidState {
    return { blob: this.#blob.slice(), size: this.#size, link: this.#link };
  }

  /** EBADMSG unless `s` is a state this region can be in. */
  static checkState(s: EdidState): void {
    if (s.blob.length !== EDID_BLOB_MAX) throw new VfioError('EBADMSG', `an EDID state has a ${s.blob.length}-byte blob, not ${EDID_BLOB_MAX}`);
    if (!Number.isInteger(s.size) || s.size < 0 || s.size > EDID_BLOB_MAX) throw new VfioError('EBADMSG', `an EDID state has size ${s.size}`);
    if (s.link !== LINK_STATE.UP && s.link !== LINK_STATE.DOWN) throw new VfioError('EBADMSG', `an EDID state has link state ${s.link}`);
  }

  /** Becomes `s` (checked first). */
  restoreState(s: EdidState): void {
    EdidRegion.checkState(s);
    this.#blob.set(s.blob);
    this.#size = s.size;
    this.#link = s.link;
  }

  /** A host read of the region (VFIO region read). */
  read(offset: number, dest: Uint8Array): void {
    checkRange(offset, dest.length);
    dest.fill(0);
    if (offset < REGS_END) {
      if (!isRegisterAccess(offset, dest.length)) return;
      new DataView(dest.buffer, dest.byteOffset, 4).setUint32(0, this.#register(offset), true);
      return;
    }
    const at = offset - EDID_BLOB_OFFSET;
    if (at >= 0 && at < EDID_BLOB_MAX) dest.set(this.#blob.subarray(at, Math.min(at + dest.length, EDID_BLOB_MAX)));
  }

  /**
   * A host write of the region: edid_size and link_state are writable
   * (whole aligned 32-bit writes), the blob takes any bytes inside it, the
   * rest ignores writes as the kernel's regions do.
   */
  write(offset: number, src: Uint8Array): void {
    checkRange(offset, src.length);
    if (offset < REGS_END) {
      if (!isRegisterAccess(offset, src.length)) return;
      const v = new DataView(src.buffer, src.byteOffset, 4).getUint32(0, true);
      if (offset === EDID_REG.EDID_SIZE) this.#size = Math.min(v, EDID_BLOB_MAX);
      else if (offset === EDID_REG.LINK_STATE && (v === LINK_STATE.UP || v === LINK_STATE.DOWN)) this.#link = v;
      return;
    }
    const at = offset - EDID_BLOB_OFFSET;
    if (at >= 0 && at + src.length <= EDID_BLOB_MAX) this.#blob.set(src, at);
  }

  /**
   * What the guest reads at `offset` of its EDID window (MMIO BAR
   * 0x000-0x3ff): the blob while the link is up, zeros past its size or
   * while it is down.
   */
  readGuestWindow(offset: number, dest: Uint8Array): void {
    dest.fill(0);
    if (!this.linkUp || offset >= this.#size) return;
    dest.set(this.#blob.subarray(offset, Math.min(offset + dest.length, this.#size)));
  }

  #register(offset: number): number {
    switch (offset) {
      case EDID_REG.EDID_OFFSET:
        return EDID_BLOB_OFFSET;
      case EDID_REG.EDID_MAX_SIZE:
        return EDID_BLOB_MAX;
      case EDID_REG.EDID_SIZE:
        return this.#size;
      case EDID_REG.MAX_XRES:
        return this.maxWidth;
      case EDID_REG.MAX_YRES:
        return this.maxHeight;
      default:
        return this.#link;
    }
  }
}

function isRegisterAccess(offset: number, length: number): boolean {
  return length === 4 && offset % 4 === 0;
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > EDID_REGION_SIZE) {
    throw new VfioError('EINVAL', `access of ${length} bytes at 0x${offset.toString(16)} runs outside the ${EDID_REGION_SIZE}-byte EDID region`);
  }
}
