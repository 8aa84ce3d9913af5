/**
 * Base address registers and the expansion ROM BAR.
 *
 * A BAR is nothing but a write mask: the address bits above the size are
 * writable, the bits below it and the type bits are not. Writing all-ones and
 * reading back therefore yields the size mask with the type bits, which is
 * how every OS sizes a BAR; no special case is needed for the probe.
 */

import { VfioError } from '../base/errors.js';
import { type ConfigSpace, PCI_COMMAND, PCI_HEADER } from './config-space.js';

/** Low bits of a BAR (include/uapi/linux/pci_regs.h). */
const PCI_BAR_BITS = {
  SPACE_IO: 0x01,
  MEM_TYPE_64: 0x04,
  MEM_PREFETCH: 0x08,
  /** Address bits of an I/O BAR. */
  IO_MASK: 0xfffffffc,
  /** Address bits of a memory BAR. */
  MEM_MASK: 0xfffffff0,
} as const;

/** Expansion ROM BAR: enable bit and address bits. */
const PCI_ROM_BITS = {
  ENABLE: 0x01,
  ADDRESS_MASK: 0xfffff800,
} as const;

export type BarKind = 'io' | 'mem32' | 'mem64';

/** One BAR as the device implements it. A 64-bit BAR also takes the next slot. */
export interface BarDescriptor {
  kind: BarKind;
  /** Bytes; a power of two (I/O: 4..256, memory: 16 and up). */
  size: number;
  /** Memory BARs only: reads have no side effects. */
  prefetchable?: boolean;
}

/** The expansion ROM, when the function has one. */
export interface RomDescriptor {
  /** Bytes; a power of two from 2 KiB to 2 GiB. */
  size: number;
}

/** BARs of a type-0 function, which are VFIO regions 0..5. */
export const PCI_NUM_BARS = 6;

const MIN_IO = 4;
const MAX_IO = 256;
const MIN_MEM = 16;
const MAX_MEM32 = 2 ** 31;
const MIN_ROM = 2048;

/**
 * The six BARs and the ROM BAR of a function, laid out in its config space.
 * Indexes match VFIO regions 0..5; the upper half of a 64-bit BAR has no
 * descriptor of its own.
 */
export class Bars {
  readonly #cs: ConfigSpace;
  readonly #bars: ReadonlyArray<BarDescriptor | undefined>;
  readonly rom: RomDescriptor | undefined;

  constructor(cs: ConfigSpace, bars: ReadonlyArray<BarDescriptor | undefined>, rom?: RomDescriptor) {
    this.#cs = cs;
    this.#bars = validate(bars);
    if (rom) checkSize(rom.size, MIN_ROM, MAX_MEM32, 'expansion ROM');
    this.rom = rom;
    this.#install();
  }

  /** The BAR at `index` (0..5), undefined when unimplemented or the upper half of a 64-bit BAR. */
  get(index: number): BarDescriptor | undefined {
    checkIndex(index);
    return this.#bars[index];
  }

  /** Size in bytes of BAR `index`, 0 when unimplemented. */
  size(index: number): number {
    return this.get(index)?.size ?? 0;
  }

  /** The address software programmed into BAR `index` (type bits removed). */
  baseAddress(index: number): bigint {
    const bar = this.get(index);
    if (!bar) return 0n;
    const off = barOffset(index);
    const lo = this.#cs.getU32(off);
    if (bar.kind === 'io') return BigInt((lo & PCI_BAR_BITS.IO_MASK) >>> 0);
    const low = BigInt((lo & PCI_BAR_BITS.MEM_MASK) >>> 0);
    if (bar.kind === 'mem32') return low;
    return (BigInt(this.#cs.getU32(off + 4)) << 32n) | low;
  }

  /** Whether the function currently decodes accesses to BAR `index` (command register). */
  decodes(index: number): boolean {
    const bar = this.get(index);
    if (!bar) return false;
    const cmd = this.#cs.getU16(PCI_HEADER.COMMAND);
    return (cmd & (bar.kind === 'io' ? PCI_COMMAND.IO : PCI_COMMAND.MEMORY)) !== 0;
  }

  /** The programmed ROM address, and whether both its enable bit and memory decode are on. */
  romState(): { address: number; enabled: boolean } {
    const v = this.#cs.getU32(PCI_HEADER.ROM_ADDRESS);
    const mem = (this.#cs.getU16(PCI_HEADER.COMMAND) & PCI_COMMAND.MEMORY) !== 0;
    return { address: (v & PCI_ROM_BITS.ADDRESS_MASK) >>> 0, enabled: this.rom !== undefined && mem && (v & PCI_ROM_BITS.ENABLE) !== 0 };
  }

  #install(): void {
    const cs = this.#cs;
    let io = false;
    let mem = this.rom !== undefined;
    for (let i = 0; i < PCI_NUM_BARS; i++) {
      const bar = this.#bars[i];
      const off = barOffset(i);
      if (!bar) {
        // Unimplemented (or the upper half defined below): reads 0, ignores writes.
        if (i === 0 || this.#bars[i - 1]?.kind !== 'mem64') cs.define(off, 4, 0);
        continue;
      }
      if (bar.kind === 'io') {
        io = true;
        cs.define(off, 4, PCI_BAR_BITS.SPACE_IO, { writable: (PCI_BAR_BITS.IO_MASK & ~(bar.size - 1)) >>> 0 });
        continue;
      }
      mem = true;
      const type = (bar.prefetchable ? PCI_BAR_BITS.MEM_PREFETCH : 0) | (bar.kind === 'mem64' ? PCI_BAR_BITS.MEM_TYPE_64 : 0);
      // Writable address bits of the whole (up to 64-bit) register.
      const addressBits = ((1n << 64n) - BigInt(bar.size)) & 0xffff_ffff_ffff_fff0n;
      cs.define(off, 4, type, { writable: Number(addressBits & 0xffff_ffffn) });
      if (bar.kind === 'mem64') cs.define(off + 4, 4, 0, { writable: Number(addressBits >> 32n) });
    }
    const rom = this.rom;
    cs.define(PCI_HEADER.ROM_ADDRESS, 4, 0, {
      writable: rom ? ((PCI_ROM_BITS.ADDRESS_MASK & ~(rom.size - 1)) | PCI_ROM_BITS.ENABLE) >>> 0 : 0,
    });
    // A function hardwires to 0 the decode enables of spaces it has no BAR in.
    const cmd = cs.writableMask(PCI_HEADER.COMMAND, 2);
    const decode = (io ? PCI_COMMAND.IO : 0) | (mem ? PCI_COMMAND.MEMORY : 0);
    cs.define(PCI_HEADER.COMMAND, 2, cs.getU16(PCI_HEADER.COMMAND) & ~(PCI_COMMAND.IO | PCI_COMMAND.MEMORY), {
      writable: (cmd & ~(PCI_COMMAND.IO | PCI_COMMAND.MEMORY)) | decode,
    });
  }
}

/** Config-space offset of BAR `index`. */
export function barOffset(index: number): number {
  checkIndex(index);
  return PCI_HEADER.BASE_ADDRESS_0 + 4 * index;
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= PCI_NUM_BARS) {
    throw new VfioError('EINVAL', `BAR index must be 0..5, not ${index}`);
  }
}

function validate(bars: ReadonlyArray<BarDescriptor | undefined>): Array<BarDescriptor | undefined> {
  if (bars.length > PCI_NUM_BARS) {
    throw new VfioError('EINVAL', `a type-0 function has 6 BARs, not ${bars.length}`);
  }
  const out = Array.from({ length: PCI_NUM_BARS }, (): BarDescriptor | undefined => undefined);
  for (let i = 0; i < bars.length; i++) {
    const bar = bars[i];
    if (!bar) continue;
    if (i > 0 && out[i - 1]?.kind === 'mem64') {
      throw new VfioError('EINVAL', `BAR${i} is the upper half of 64-bit BAR${i - 1} and cannot be defined`);
    }
    switch (bar.kind) {
      case 'io':
        if (bar.prefetchable) throw new VfioError('EINVAL', `I/O BAR${i} cannot be prefetchable`);
        checkSize(bar.size, MIN_IO, MAX_IO, `I/O BAR${i}`);
        break;
      case 'mem32':
        checkSize(bar.size, MIN_MEM, MAX_MEM32, `BAR${i}`);
        break;
      case 'mem64':
        if (i === PCI_NUM_BARS - 1) throw new VfioError('EINVAL', 'BAR5 cannot be 64-bit: it has no upper half');
        checkSize(bar.size, MIN_MEM, Number.MAX_SAFE_INTEGER, `BAR${i}`);
        break;
      default:
        throw new VfioError('EINVAL', `BAR${i} has unknown kind ${String((bar as { kind: unknown }).kind)}`);
    }
    out[i] = { ...bar };
  }
  return out;
}

function checkSize(size: number, min: number, max: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < min || size > max || !isPowerOfTwo(size)) {
    throw new VfioError('EINVAL', `${what} size ${size} must be a power of two from ${min} to ${max}`);
  }
}

function isPowerOfTwo(n: number): boolean {
  // Works beyond 32 bits, where bitwise operators do not.
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
