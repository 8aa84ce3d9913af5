/**
 * The vfio-pci library (the kernel's vfio_pci_core): a core device that is
 * an emulated PCI function. It owns the function's config space, BARs,
 * capabilities and interrupts, and answers the VFIO PCI layout:
 *
 * - regions 0..5 are BAR0..5, 6 the expansion ROM, 7 config space, 8 VGA
 *   (size 0 for what the function lacks);
 * - irq indexes 0..4 are INTx, MSI, MSI-X, ERR and REQ, wired to the
 *   enables in config space (see PciInterrupts).
 *
 * A driver extends it, declares the function in the constructor options
 * and serves its BARs by overriding barRead/barWrite, or backs a memory BAR
 * with shared memory (backBar) that the client maps. Config space, the
 * MSI-X table and PBA, and backed BARs need no driver code.
 *
 * Last close disables the client's interrupts but keeps the function's
 * state, so a client that reconnects finds the device as it left it; reset
 * puts the function back in its power-on state.
 */

import { VfioDevice, type DeviceOptions, type RegionMmap } from '../core/device.js';
import type { MigrationInfo } from '../core/device-migration.js';
import {
  checkMigStreamStart,
  FieldReader,
  FieldWriter,
  MigStreamWriter,
  readMigStream,
  readMigStreamInTurns,
  YIELD_EVERY,
} from '../core/migration-stream.js';
import { VfioError } from '../base/errors.js';
import {
  DeviceFlags,
  PciIrq,
  PciRegion,
  RegionFlags,
  type DeviceInfo,
  type EventNotifier,
  type IrqInfo,
  type RegionInfo,
  type SetIrqsRequest,
  type SparseMmapArea,
} from '../base/uapi.js';
import { MappedMemory } from '../native/memory.js';
import { Bars, PCI_NUM_BARS, type BarDescriptor } from './bar.js';
import {
  CapabilityList,
  type ExpressCapability,
  type ExpressOptions,
  type MsiCapability,
  type MsiOptions,
  type MsixCapability,
  type MsixOptions,
  type PmCapability,
  type PmOptions,
} from './capabilities.js';
import { ConfigSpace, PCI_HEADER, PCI_STATUS, type Type0HeaderOptions } from './config-space.js';
import { PciInterrupts } from './interrupts.js';
import { configFields, msixTableName, nameAccess, type RegisterField } from './register-names.js';

/** Record tag of the function's own state in a migration stream (drivers use 16 and up). */
export const PCI_FUNCTION_RECORD = 2;
/** Record tag, in a takeover's stream only, of the client's interrupt wiring the function holds (PciInterrupts.saveWiring). */
export const PCI_WIRING_RECORD = 3;

/** What a migrating driver declares (VfioPciDevice.migrationSpec). */
export interface PciMigrationSpec extends MigrationInfo {
  /** the stream's device kind ("mtty") */
  kind: string;
  major: number;
  minor: number;
  /** the type's parameters: a stream loads only where they are equal */
  params: Uint8Array;
  /** the driver's record tags (16 and up) */
  tags: readonly number[];
}

/** Granularity of what a client can mmap: MSI-X pages are cut out at this size. */
const PAGE_SIZE = 4096;

/** The capabilities a function has; they are laid out from 0x40 in this order. */
export interface PciCapabilityOptions {
  /** Power Management (D0/D3hot; leaving D3hot keeps state). */
  pm?: PmOptions;
  msi?: MsiOptions;
  /** MSI-X; its table and PBA must lie in memory BARs of the function. */
  msix?: MsixOptions;
  /** A PCI Express endpoint (4 KiB config space); `flr` advertises Function Level Reset. */
  express?: Omit<ExpressOptions, 'onFlr'> & { flr?: boolean };
  /** Bytes of a vendor-specific capability, after its 3-byte header; several (virtio's) as a list, chained in order. */
  vendor?: Uint8Array | readonly Uint8Array[];
}

/** The expansion ROM: its size (a power of two, 2 KiB and up) and contents. */
export interface PciRomOptions {
  size: number;
  /** Zero-filled up to `size`. */
  contents?: Uint8Array;
}

/** What a driver declares about its function when it constructs a VfioPciDevice. */
export interface PciDeviceOptions extends DeviceOptions {
  /** Identity of the function (type-0 header). */
  header: Type0HeaderOptions;
  /** BAR0..5; undefined for a BAR the function does not implement. */
  bars?: ReadonlyArray<BarDescriptor | undefined>;
  rom?: PciRomOptions;
  capabilities?: PciCapabilityOptions;
  /** Report the ERR irq index (AER); default: when the function is PCI Express. */
  errorReporting?: boolean;
  /**
   * Called once, at the end of release(), even when freeing the function's
   * own resources failed: a driver gives back here what it took for the
   * device at probe (ports or memory from its pool).
   */
  onRelease?: () => void;
  /**
   * Memory BARs' memory from the previous daemon (a takeover), by BAR
   * index: clients have it mapped, so backBar() adopts it instead of
   * making fresh memory. The device owns it from construction on, used or
   * not.
   */
  barMemory?: ReadonlyArray<MappedMemory | undefined>;
}

/**
 * The core device of an emulated PCI function: VFIO regions 0..8 and irq
 * indexes 0..4 served from its config space, BARs and capabilities. A
 * driver extends it (see the module comment for what it overrides).
 */
export abstract class VfioPciDevice extends VfioDevice {
  /** The function's config space (region 7). */
  readonly config: ConfigSpace;
  /** BAR0..5 and the ROM BAR as laid out in config space. */
  readonly bars: Bars;
  /** INTx, MSI, MSI-X, ERR and REQ: how the function reaches the client. */
  readonly irqs: PciInterrupts;
  readonly pm: PmCapability | undefined;
  readonly msi: MsiCapability | undefined;
  readonly msix: MsixCapability | undefined;
  readonly express: ExpressCapability | undefined;

  readonly #rom: Uint8Array | undefined;
  readonly #backing = Array.from({ length: PCI_NUM_BARS }, (): MappedMemory | undefined => undefined);
  /** Memory handed over for backBar() to adopt, by BAR (PciDeviceOptions.barMemory). */
  readonly #handedOver: Array<MappedMemory | undefined>;
  /** Config space as it came out of the constructor: the power-on state. */
  readonly #powerOn: Uint8Array;
  #onRelease: (() => void) | undefined;
  /** Config space's named fields, made at the first trace that needs them. */
  #configNames: RegisterField[] | undefined;

  constructor(options: PciDeviceOptions) {
    super(options);
    this.#handedOver = Array.from({ length: PCI_NUM_BARS }, (_, i) => options.barMemory?.[i]);
    const caps = options.capabilities ?? {};
    const cs = ConfigSpace.type0({ ...options.header, extended: options.header.extended ?? caps.express !== undefined });
    this.config = cs;
    this.bars = new Bars(cs, options.bars ?? [], options.rom && { size: options.rom.size });
    if (options.rom) {
      const contents = options.rom.contents ?? new Uint8Array(0);
      if (contents.length > options.rom.size) {
        throw new VfioError('EINVAL', `${this.name}: ROM contents of ${contents.length} bytes exceed its ${options.rom.size}-byte BAR`);
      }
      this.#rom = new Uint8Array(options.rom.size);
      this.#rom.set(contents);
    }
    const list = new CapabilityList(cs);
    this.pm = caps.pm ? list.addPowerManagement(caps.pm) : undefined;
    this.msi = caps.msi ? list.addMsi(caps.msi) : undefined;
    this.msix = caps.msix ? list.addMsix(caps.msix, this.bars) : undefined;
    if (caps.express) {
      const { flr, ...express } = caps.express;
      this.express = list.addExpress({ ...express, onFlr: flr ? () => this.#resetFunction() : undefined });
    } else {
      this.express = undefined;
    }
    const vendor = caps.vendor instanceof Uint8Array ? [caps.vendor] : (caps.vendor ?? []);
    for (const data of vendor) list.addVendorSpecific(data);
    this.irqs = new PciInterrupts({
      config: cs,
      msi: this.msi,
      msix: this.msix,
      errorReporting: options.errorReporting ?? caps.express !== undefined,
    });
    this.#powerOn = cs.saveState();
    this.#onRelease = options.onRelease;
  }

  // ---- driver API ---------------------------------------------------------

  /**
   * Backs memory BAR `index` with shared memory a client may map (a
   * framebuffer): region accesses read and write it, GET_REGION_INFO flags
   * it MMAP (less the pages of an MSI-X table or PBA in it), and mmap(index)
   * hands out its fd. Call it from the driver's constructor; release()
   * frees the memory. In a takeover it is the memory handed over
   * (PciDeviceOptions.barMemory), as it was: see barAdopted().
   */
  protected backBar(index: number, name = `${this.name}-bar${index}`): MappedMemory {
    const bar = this.bars.get(index);
    if (!bar || bar.kind === 'io') throw new VfioError('EINVAL', `${this.name}: BAR${index} is not a memory BAR`);
    if (this.#backing[index]) throw new VfioError('EEXIST', `${this.name}: BAR${index} is backed already`);
    const adopted = this.#handedOver[index];
    if (adopted && adopted.bytes.length !== bar.size) {
      throw new VfioError('EINVAL', `${this.name}: the memory handed over for BAR${index} has ${adopted.bytes.length} bytes, the BAR ${bar.size}`);
    }
    const memory = adopted ?? MappedMemory.create(name, bar.size);
    this.#backing[index] = memory;
    return memory;
  }

  /** True when BAR `index` is backed by memory handed over by a previous daemon: its contents are the clients', keep them. */
  protected barAdopted(index: number): boolean {
    return this.#handedOver[index] !== undefined && this.#backing[index] === this.#handedOver[index];
  }

  /** The memory backing BAR `index`, if backed (a takeover hands its fd on). */
  barMemory(index: number): MappedMemory | undefined {
    return this.#backing[index];
  }

  /**
   * Reads `dest.length` bytes of BAR `bar` at `offset`, for BARs neither
   * backed by memory nor holding MSI-X at that place. The range is checked
   * against the BAR's size already.
   */
  protected barRead(bar: number, offset: number, dest: Uint8Array): void {
    void offset;
    void dest;
    throw new VfioError('EINVAL', `${this.name}: BAR${bar} cannot be read`);
  }

  /** Writes `src` to BAR `bar` at `offset`; the counterpart of barRead. */
  protected barWrite(bar: number, offset: number, src: Uint8Array): void {
    void offset;
    void src;
    throw new VfioError('EINVAL', `${this.name}: BAR${bar} cannot be written`);
  }

  /**
   * What `size` bytes at `offset` of BAR `bar` are, in the driver's words
   * (`port0 LCR`), for traces; the MSI-X table and PBA are named already.
   * Read state only (see VfioDevice.describeAccess).
   */
  protected barRegisterName(bar: number, offset: number, size: number, write: boolean): string | undefined {
    void bar;
    void offset;
    void size;
    void write;
    return undefined;
  }

  /**
   * The driver's part of a function reset (VFIO_DEVICE_RESET, hot reset,
   * FLR): put its own state back to power-on. Config space, capabilities
   * and interrupts are reset already when it runs.
   */
  protected resetFunction(): void {}

  // ---- ops ----------------------------------------------------------------

  override getInfo(): DeviceInfo {
    return { flags: DeviceFlags.PCI | DeviceFlags.RESET, numRegions: PciRegion.NUM, numIrqs: PciIrq.NUM };
  }

  override getRegionInfo(index: number): RegionInfo {
    const rw = RegionFlags.READ | RegionFlags.WRITE;
    switch (checkRegion(this.name, index)) {
      case PciRegion.ROM:
        return this.#rom ? { index, flags: RegionFlags.READ, size: this.#rom.length } : { index, flags: 0, size: 0 };
      case PciRegion.CONFIG:
        return { index, flags: rw, size: this.config.size };
      case PciRegion.VGA:
        return { index, flags: 0, size: 0 };
    }
    const size = this.bars.size(index);
    if (size === 0) return { index, flags: 0, size: 0 };
    const memory = this.#backing[index];
    if (!memory) return { index, flags: rw, size };
    const info: RegionInfo = { index, flags: rw | RegionFlags.MMAP, size, mmap: { fd: memory.fd, offset: 0 } };
    const holes = this.#msixPages(index);
    if (holes.length > 0) info.sparseMmap = sparseAreas(size, holes);
    return info;
  }

  override getIrqInfo(index: number): IrqInfo {
    return this.irqs.info(index);
  }

  override setIrqs(request: SetIrqsRequest): void {
    this.irqs.setIrqs(request);
  }

  /** Eventfd triggers attached where the previous daemon had them (PciInterrupts.adoptTriggers). */
  override adoptIrqs(request: SetIrqsRequest): void {
    if (request.action !== 'trigger' || request.data !== 'eventfd' || request.values.some((n) => n === null)) {
      throw new VfioError('EINVAL', 'a takeover adopts trigger eventfds only');
    }
    this.irqs.adoptTriggers(request.index, request.start, request.values as EventNotifier[]);
  }

  override regionRead(index: number, offset: number, dest: Uint8Array): void {
    const region = checkRegion(this.name, index);
    if (region === PciRegion.CONFIG) return this.config.readBytes(offset, dest);
    if (region === PciRegion.ROM && this.#rom) {
      this.#checkRange(region, offset, dest.length, this.#rom.length);
      dest.set(this.#rom.subarray(offset, offset + dest.length));
      return;
    }
    this.#barAccess(region, offset, dest, false);
  }

  override regionWrite(index: number, offset: number, src: Uint8Array): void {
    const region = checkRegion(this.name, index);
    if (region === PciRegion.CONFIG) return this.config.writeBytes(offset, src);
    this.#barAccess(region, offset, src, true);
  }

  /** A memory BAR's bytes (not the MSI-X table or PBA: those are registers), or the ROM's for a read. */
  override regionMemory(index: number, offset: number, count: number, write: boolean): Uint8Array | null {
    if (index === PciRegion.ROM && !write && this.#rom) {
      this.#checkRange(index, offset, count, this.#rom.length);
      return this.#rom.subarray(offset, offset + count);
    }
    const memory = index >= 0 && index < PCI_NUM_BARS ? this.#backing[index] : undefined;
    if (!memory) return null;
    this.#checkRange(index, offset, count, this.bars.size(index));
    if (this.#msixPart(index, offset, count) !== null) return null;
    return memory.bytes.subarray(offset, offset + count);
  }

  override describeAccess(index: number, offset: number, size: number, write: boolean): string | undefined {
    if (index === PciRegion.CONFIG) return nameAccess((this.#configNames ??= configFields(this.config, this.msi)), offset, size);
    if (index >= PCI_NUM_BARS) return undefined;
    const msix = this.msix;
    switch (msix?.claims(index, offset, size)) {
      case 'table':
        return msixTableName(offset - msix.tableOffset, size);
      case 'pba':
        return `MSIX PBA+${offset - msix.pbaOffset}`;
    }
    return this.barRegisterName(index, offset, size, write);
  }

  override regionName(index: number): string {
    return REGION_NAMES[index] ?? super.regionName(index);
  }

  override irqName(index: number): string {
    return IRQ_NAMES[index] ?? super.irqName(index);
  }

  override mmap(index: number): RegionMmap {
    const memory = index >= 0 && index < PCI_NUM_BARS ? this.#backing[index] : undefined;
    if (!memory) throw new VfioError('EINVAL', `${this.name}: region ${index} cannot be mmapped`);
    return { fd: memory.fd, offset: 0 };
  }

  override reset(): void {
    this.#resetFunction();
  }

  /** Asks the client to release the device through the REQ interrupt. */
  override request(count: number): void {
    void count;
    this.irqs.signalRequest();
  }

  /**
   * Last close: the client's interrupts are disabled and its eventfds let
   * go, as the kernel does; the function's state stays for the next client.
   * A driver that overrides this calls super.closeDevice().
   */
  override closeDevice(): void {
    for (let i = 0; i < PciIrq.NUM; i++) this.irqs.disable(i);
    // Enables software set in config space go too: the next client starts on INTx.
    this.msi?.setEnabled(false);
    this.msix?.setEnabled(false);
  }

  /**
   * Frees the BAR memory, then runs the onRelease option (once). A driver
   * that overrides this calls super.release().
   */
  override release(): void {
    try {
      this.irqs.release();
      for (const memory of this.#backing) memory?.close();
      for (const memory of this.#handedOver) memory?.close();
    } finally {
      const done = this.#onRelease;
      this.#onRelease = undefined;
      done?.();
    }
  }

  // ---- migration v2 -----------------------------------------------------------

  /**
   * What the driver's migration streams are (kind, version, the type's
   * parameters, its record tags) and what it migrates (flags, the largest
   * stream); null, the default, when it does not migrate.
   */
  protected migrationSpec(): PciMigrationSpec | null {
    return null;
  }

  /** Appends the driver's records to a STOP_COPY stream (the function's own state is saved already). */
  protected saveMigrationRecords(w: MigStreamWriter): void {
    void w;
  }

  /**
   * Decodes and checks the driver's records of a stream (anything wrong:
   * a VfioError) and returns what applies them (which may take turns of
   * the event loop for large memory). Nothing may change before the
   * returned function runs, and it must not fail.
   */
  protected loadMigrationRecords(records: ReadonlyMap<number, Uint8Array>): () => void | Promise<void> {
    void records;
    return () => {};
  }

  override migrationInfo(): MigrationInfo | null {
    const spec = this.migrationSpec();
    return spec && { flags: spec.flags, maxStreamBytes: spec.maxStreamBytes };
  }

  /**
   * The stream: header (PRE_COPY's stage, or the start of STOP_COPY's),
   * then the function's state (config space, MSI-X table and PBA), the
   * driver's records and the end. In a takeover (`handover`) also the
   * client's interrupt wiring (PCI_WIRING_RECORD), and the driver leaves
   * out the memory its BARs share with clients.
   */
  override migrationSave(stage: 'precopy' | 'stop-copy', precopied: boolean): Uint8Array | Iterable<Uint8Array> {
    const spec = this.#spec();
    const w = new MigStreamWriter();
    if (stage === 'precopy' || !precopied) w.begin(spec);
    if (stage === 'precopy') return w.take();
    w.record(PCI_FUNCTION_RECORD, this.#saveFunction());
    if (this.handover) w.record(PCI_WIRING_RECORD, this.irqs.saveWiring());
    this.saveMigrationRecords(w);
    // Lazy records (video memory) are copied as the stream is read.
    return w.end().pieces();
  }

  /**
   * Checks the whole stream, then applies the function's state, the
   * driver's records and (a takeover's stream, which must have it) the
   * interrupt wiring. A large stream is checked and applied in turns of
   * the event loop (the set stays locked: nothing of this device runs
   * meanwhile, other devices do).
   */
  override migrationLoad(stream: Uint8Array): void | Promise<void> {
    const spec = this.#spec();
    const expect = { ...spec, tags: [PCI_FUNCTION_RECORD, ...(this.handover ? [PCI_WIRING_RECORD] : []), ...spec.tags] };
    if (stream.length <= YIELD_EVERY) return this.#apply(spec, readMigStream(stream, expect));
    return readMigStreamInTurns(stream, expect).then((records) => this.#apply(spec, records));
  }

  #apply(spec: PciMigrationSpec, records: ReadonlyMap<number, Uint8Array>): void | Promise<void> {
    const fn = records.get(PCI_FUNCTION_RECORD);
    if (fn === undefined) throw new VfioError('EBADMSG', `the ${spec.kind} migration stream has no PCI function record`);
    const wiring = records.get(PCI_WIRING_RECORD);
    if (this.handover && wiring === undefined) throw new VfioError('EBADMSG', `the ${spec.kind} takeover stream has no interrupt wiring record`);
    const applyFunction = this.#checkFunction(fn);
    const applyWiring = wiring === undefined ? () => {} : this.irqs.checkWiring(wiring);
    const applyDriver = this.loadMigrationRecords(records);
    applyFunction();
    applyWiring();
    return applyDriver();
  }

  /** A stream of another kind, version or type is refused at its header. */
  override migrationCheckStart(head: Uint8Array): boolean {
    return checkMigStreamStart(head, this.#spec());
  }

  /** Interrupts are held while stopped (see PciInterrupts.pause). */
  override migrationStop(): void {
    this.irqs.pause();
  }

  /** Held interrupts go out; a line high after a load is signalled. */
  override migrationStart(): void {
    this.irqs.resume();
  }

  #spec(): PciMigrationSpec {
    const spec = this.migrationSpec();
    if (spec === null) throw new VfioError('ENOTTY', `${this.name}: this device does not migrate`);
    return spec;
  }

  #saveFunction(): Uint8Array {
    const w = new FieldWriter();
    const config = this.config.saveState();
    w.u32(config.length).bytes(config);
    const msix = this.msix?.table.saveState() ?? new Uint8Array(0);
    w.u32(msix.length).bytes(msix);
    return w.take();
  }

  /** The function's record, checked against this function; returns what applies it. */
  #checkFunction(payload: Uint8Array): () => void {
    const r = new FieldReader(payload, 'PCI function');
    const config = r.bytes(r.u32());
    const msix = r.bytes(r.u32());
    r.done();
    // Bits the function drives itself may differ: interrupt status, MSI pending bits.
    const driven: Array<[number, 1 | 2 | 4, number]> = [[PCI_HEADER.STATUS, 2, PCI_STATUS.INTERRUPT]];
    if (this.msi && this.msi.pendingOffset >= 0) driven.push([this.msi.pendingOffset, 4, 0xffffffff]);
    this.config.checkState(config, driven);
    const msixSize = this.msix ? this.msix.table.tableSize + this.msix.table.pbaSize : 0;
    if (msix.length !== msixSize) throw new VfioError('EINVAL', `the stream's MSI-X state has ${msix.length} bytes, this function's ${msixSize}`);
    return () => {
      this.config.restoreState(config);
      if (this.msix) {
        this.msix.table.restoreState(msix);
        this.msix.table.functionMasked = this.msix.functionMasked;
      }
      this.pm?.syncFromConfig();
    };
  }

  // ---- internals ------------------------------------------------------------

  #resetFunction(): void {
    this.config.restoreState(this.#powerOn);
    this.pm?.reset();
    this.msi?.reset();
    this.msix?.reset();
    this.irqs.reset();
    this.resetFunction();
  }

  /** A read into or a write from `data` at `offset` of BAR `region`. */
  #barAccess(region: number, offset: number, data: Uint8Array, write: boolean): void {
    if (region >= PCI_NUM_BARS) {
      throw new VfioError('EINVAL', `${this.name}: region ${region} cannot be ${write ? 'written' : 'read'}`);
    }
    const size = this.bars.size(region);
    if (size === 0) throw new VfioError('EINVAL', `${this.name}: BAR${region} is not implemented`);
    this.#checkRange(region, offset, data.length, size);
    const msix = this.msix;
    switch (this.#msixPart(region, offset, data.length)) {
      case 'table': {
        const at = offset - msix!.tableOffset;
        return write ? msix!.table.writeTable(at, data) : msix!.table.readTable(at, data);
      }
      case 'pba': {
        const at = offset - msix!.pbaOffset;
        return write ? msix!.table.writePba(at, data) : msix!.table.readPba(at, data);
      }
    }
    const memory = this.#backing[region];
    if (memory && write) memory.bytes.set(data, offset);
    else if (memory) data.set(memory.bytes.subarray(offset, offset + data.length));
    else if (write) this.barWrite(region, offset, data);
    else this.barRead(region, offset, data);
  }

  #checkRange(region: number, offset: number, length: number, size: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > size) {
      const what = region === PciRegion.ROM ? 'ROM' : `BAR${region}`;
      throw new VfioError('EINVAL', `${this.name}: access of ${length} bytes at 0x${offset.toString(16)} runs outside the ${size}-byte ${what}`);
    }
  }

  /** Which MSI-X structure an access falls in; EINVAL when it straddles one's edge. */
  #msixPart(bar: number, offset: number, length: number): 'table' | 'pba' | null {
    const msix = this.msix;
    if (!msix) return null;
    const part = msix.claims(bar, offset, length);
    if (part === null) return null;
    const start = part === 'table' ? msix.tableOffset : msix.pbaOffset;
    const size = part === 'table' ? msix.table.tableSize : msix.table.pbaSize;
    if (offset < start || offset + length > start + size) {
      throw new VfioError('EINVAL', `${this.name}: access at BAR${bar} 0x${offset.toString(16)} straddles the MSI-X ${part}`);
    }
    return part;
  }

  /** Page-aligned ranges of BAR `bar` that hold the MSI-X table or PBA. */
  #msixPages(bar: number): Array<[number, number]> {
    const msix = this.msix;
    if (!msix) return [];
    const out: Array<[number, number]> = [];
    if (msix.tableBar === bar) out.push(pageSpan(msix.tableOffset, msix.table.tableSize));
    if (msix.pbaBar === bar) out.push(pageSpan(msix.pbaOffset, msix.table.pbaSize));
    return out;
  }
}

/** Region names of the VFIO PCI layout, by index, as traces show them. */
const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'config', 'VGA'];
/** Irq index names of the VFIO PCI layout. */
const IRQ_NAMES = ['INTX', 'MSI', 'MSIX', 'ERR', 'REQ'];

function checkRegion(name: string, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= PciRegion.NUM) {
    throw new VfioError('EINVAL', `${name}: region ${index} does not exist (0..8: BAR0-5, ROM, config, VGA)`);
  }
  return index;
}

function pageSpan(offset: number, size: number): [number, number] {
  return [Math.floor(offset / PAGE_SIZE) * PAGE_SIZE, Math.ceil((offset + size) / PAGE_SIZE) * PAGE_SIZE];
}

/** `[0, size)` less the `holes`, as mmap-able areas in order. */
function sparseAreas(size: number, holes: Array<[number, number]>): SparseMmapArea[] {
  const areas: SparseMmapArea[] = [];
  let at = 0;
  for (const [start, end] of [...holes].sort((a, b) => a[0] - b[0])) {
    if (start > at) areas.push({ offset: at, size: Math.min(start, size) - at });
    at = Math.max(at, end);
  }
  if (at < size) areas.push({ offset: at, size: size - at });
  return areas;
}
