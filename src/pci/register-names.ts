/**
 * Names of what a region access touches, for `uvfio trace`: a register
 * file as a list of named fields, and the fields of a function's config
 * space (the type-0 header, then each capability found on its list).
 */
import { PCI_CAP_ID, PCI_EXP, PCI_MSIX, PCI_PM, type MsiCapability } from './capabilities.js';
import { PCI_HEADER, type ConfigSpace } from './config-space.js';

/** One named register (or field) of `size` bytes at `offset`. */
export interface RegisterField {
  offset: number;
  size: number;
  name: string;
}

/**
 * The names of the fields `[offset, offset + size)` touches, joined by
 * commas (`FIRST..LAST` past four); a field entered past its start is
 * `NAME+k`. Undefined when it touches none. `fields` must be in offset order.
 */
export function nameAccess(fields: readonly RegisterField[], offset: number, size: number): string | undefined {
  const names: string[] = [];
  for (const f of fields) {
    if (f.offset >= offset + size) break;
    if (f.offset + f.size <= offset) continue;
    names.push(offset > f.offset ? `${f.name}+${offset - f.offset}` : f.name);
  }
  if (names.length === 0) return undefined;
  // A dump of the whole header is no register: name its ends.
  return names.length > MAX_NAMES ? `${names[0]}..${names[names.length - 1]}` : names.join(',');
}

/** More fields than this in one access are named by the first and last. */
const MAX_NAMES = 4;

/** Builds fields from `[name, size]` pairs laid end to end from `base` (a null name is a gap). */
export function fieldsFrom(base: number, layout: ReadonlyArray<readonly [string | null, number]>, prefix = ''): RegisterField[] {
  const out: RegisterField[] = [];
  let at = base;
  for (const [name, size] of layout) {
    if (name !== null) out.push({ offset: at, size, name: prefix + name });
    at += size;
  }
  return out;
}

const HEADER_FIELDS: readonly RegisterField[] = fieldsFrom(PCI_HEADER.VENDOR_ID, [
  ['VENDOR_ID', 2],
  ['DEVICE_ID', 2],
  ['COMMAND', 2],
  ['STATUS', 2],
  ['REVISION_ID', 1],
  ['CLASS_PROG', 1],
  ['CLASS_DEVICE', 2],
  ['CACHE_LINE_SIZE', 1],
  ['LATENCY_TIMER', 1],
  ['HEADER_TYPE', 1],
  ['BIST', 1],
  ['BAR0', 4],
  ['BAR1', 4],
  ['BAR2', 4],
  ['BAR3', 4],
  ['BAR4', 4],
  ['BAR5', 4],
  ['CARDBUS_CIS', 4],
  ['SUBSYSTEM_VENDOR_ID', 2],
  ['SUBSYSTEM_ID', 2],
  ['ROM_ADDRESS', 4],
  ['CAPABILITY_LIST', 1],
  [null, 7],
  ['INTERRUPT_LINE', 1],
  ['INTERRUPT_PIN', 1],
  ['MIN_GNT', 1],
  ['MAX_LAT', 1],
]);

/** The capabilities a list may hold more than the header, by id: the name traces give them. */
const CAP_NAMES: Record<number, string> = {
  [PCI_CAP_ID.PM]: 'PM',
  [PCI_CAP_ID.MSI]: 'MSI',
  [PCI_CAP_ID.VNDR]: 'VNDR',
  [PCI_CAP_ID.EXP]: 'EXP',
  [PCI_CAP_ID.MSIX]: 'MSIX',
};

/** At most this many capabilities are followed: a list looping on itself ends. */
const MAX_CAPS = 48;

/**
 * The named fields of `cs`: the header's, then those of every capability
 * on its list (`MSI FLAGS`, `MSI DATA`…), in offset order. `msi` gives
 * the MSI capability's layout, which its flags alone do not.
 */
export function configFields(cs: ConfigSpace, msi: MsiCapability | undefined): RegisterField[] {
  const out = [...HEADER_FIELDS];
  let at = cs.getU8(PCI_HEADER.CAPABILITY_LIST) & ~3;
  for (let n = 0; n < MAX_CAPS && at >= 0x40 && at < 0x100; n++) {
    const id = cs.getU8(at);
    const name = CAP_NAMES[id] ?? `CAP_${id.toString(16).padStart(2, '0')}`;
    out.push(
      ...fieldsFrom(
        at,
        [
          ['ID', 1],
          ['NEXT', 1],
        ],
        `${name} `,
      ),
    );
    out.push(...capabilityFields(id, at, name, msi));
    at = cs.getU8(at + 1) & ~3;
  }
  return out.sort((a, b) => a.offset - b.offset);
}

function capabilityFields(id: number, at: number, name: string, msi: MsiCapability | undefined): RegisterField[] {
  const p = `${name} `;
  switch (id) {
    case PCI_CAP_ID.PM:
      return fieldsFrom(
        at + PCI_PM.PMC,
        [
          ['PMC', 2],
          ['CTRL', 2],
          ['BSE', 1],
          ['DATA', 1],
        ],
        p,
      );
    case PCI_CAP_ID.MSI: {
      if (msi === undefined || msi.offset !== at) return fieldsFrom(at + 2, [['FLAGS', 2]], p);
      const a64 = msi.address64;
      const layout: Array<[string, number]> = [
        ['FLAGS', 2],
        ['ADDRESS_LO', 4],
      ];
      if (a64) layout.push(['ADDRESS_HI', 4]);
      layout.push(['DATA', 2]);
      if (msi.perVectorMask) layout.push(['RESERVED', 2], ['MASK', 4], ['PENDING', 4]);
      return fieldsFrom(at + 2, layout, p);
    }
    case PCI_CAP_ID.MSIX:
      return fieldsFrom(
        at + PCI_MSIX.FLAGS,
        [
          ['FLAGS', 2],
          ['TABLE', 4],
          ['PBA', 4],
        ],
        p,
      );
    case PCI_CAP_ID.EXP:
      return fieldsFrom(
        at + PCI_EXP.FLAGS,
        [
          ['FLAGS', 2],
          ['DEVCAP', 4],
          ['DEVCTL', 2],
          ['DEVSTA', 2],
          ['LNKCAP', 4],
          ['LNKCTL', 2],
          ['LNKSTA', 2],
          [null, 16],
          ['DEVCAP2', 4],
          ['DEVCTL2', 2],
          [null, 2],
          ['LNKCAP2', 4],
          ['LNKCTL2', 2],
        ],
        p,
      );
    default:
      return [];
  }
}

/** `MSIX table[3] DATA` for a byte of the table at `at` (its offset from the table's start). */
export function msixTableName(at: number, size: number): string {
  const fields = ['ADDR_LO', 'ADDR_HI', 'DATA', 'CTRL'];
  const first = Math.floor(at / 16);
  const last = Math.floor((at + size - 1) / 16);
  const field = (o: number) => fields[Math.floor((o % 16) / 4)]!;
  if (first !== last) return `MSIX table[${first}..${last}]`;
  const endField = field(at + size - 1);
  return `MSIX table[${first}] ${field(at)}${endField === field(at) ? '' : `..${endField}`}`;
}
