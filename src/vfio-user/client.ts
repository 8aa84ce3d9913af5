/**
 * A vfio-user client: what QEMU's vfio-user-pci does with a device, as a
 * typed library. It connects, negotiates, and then reaches the device
 * through its regions (messages, or mmap of the areas the server shares),
 * its interrupts (eventfds the server signals) and the client memory it
 * maps for DMA (memfd-backed memory the server maps, or plain memory the
 * client serves through the server's DMA_READ/DMA_WRITE messages).
 *
 * Every method sends one command (GET_REGION_INFO may send two: the argsz
 * retry) and resolves with its decoded reply, or rejects with the server's
 * errno as a VfioError. Commands may be issued concurrently: they are
 * pipelined and the server answers them in order.
 */
import { VfioError } from '../base/errors.js';
import { RegionFlags } from '../base/uapi.js';
import { closeFds, MappedMemory } from '../native/index.js';
import { ClientChannel } from './client/channel.js';
import { ClientDmaTable, type ClientDmaRegion } from './client/dma-table.js';
import { InterruptSet } from './client/interrupts.js';
import { MappedRegion } from './client/mapped-region.js';
import type { DmaLayout } from './context.js';
import type { Frame } from './framer.js';
import type { DeviceInfoReply, IrqAction, IrqInfoReply, PeerCapabilities, RegionInfoReply, RegionIoFdsReply, WriteMultiEntry } from './messages.js';
import { CapabilityDefault, Command, HeaderFlags, maxMessageSizeFor, PROTOCOL_MAJOR, PROTOCOL_MINOR, Size } from './protocol.js';
import {
  decodeDeviceFeatureReply,
  decodeDeviceInfoReply,
  decodeDmaUnmapReply,
  decodeEmptyReply,
  decodeIrqInfoReply,
  decodeMigDataReadReply,
  decodeRegionIoFdsReply,
  decodeRegionReadReply,
  decodeRegionWriteReply,
  decodeVersionReply,
  decodeWriteMultiReply,
  replyError,
} from './reply-decoder.js';
import { decodeRegionInfoReply } from './region-info.js';
import {
  encodeDeviceFeature,
  encodeDeviceInfoRequest,
  encodeDeviceReset,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfoRequest,
  encodeMessage,
  encodeMigDataRead,
  encodeMigDataWrite,
  encodeRegionInfoRequest,
  encodeRegionIoFdsRequest,
  encodeRegionRead,
  encodeRegionWrite,
  encodeSetIrqs,
  encodeVersionCommand,
  encodeWriteMulti,
} from './serializer.js';
import { SocketTransport } from './transport/socket-transport.js';
import type { Transport } from './transport/transport.js';
import { UnixSocket } from './transport/unix-socket.js';
import { wantsNoReply } from './header.js';
import { type Capabilities, withDefaults } from './version.js';

export type { ClientDmaRegion, DmaServed } from './client/dma-table.js';
export { InterruptLine, InterruptSet } from './client/interrupts.js';
export { MappedRegion, type MappedArea } from './client/mapped-region.js';

export interface VfioUserClientOptions {
  /** The version to propose; default uvfio's own (0.2). QEMU 11.1 proposes 0.0. */
  version?: { major: number; minor: number };
  /**
   * The capabilities to propose; null sends no JSON at all (as SPDK does).
   * Default: 16 fds, 1 MiB transfers, 65535 DMA maps, 4 KiB pages,
   * write_multiple, and a twin socket when `twinSocket` is set.
   */
  capabilities?: PeerCapabilities | null;
  /** Propose the twin socket (default false). Ignored when `capabilities` is given. */
  twinSocket?: boolean;
  /** How long a reply may take (default 5000 ms; 0 waits forever). */
  timeoutMs?: number;
  /** Layout of DMA_READ/WRITE data; default the spec's (what QEMU 11.1 speaks too, though it proposes 0.0). */
  dmaLayout?: DmaLayout;
}

/** Options of a command that may be posted. */
export interface PostOptions {
  /** NO_REPLY: resolve once sent; the server replies to nothing (QEMU's posted writes). */
  posted?: boolean;
}

/** Options of a DMA mapping. */
export interface DmaMapOptions {
  /** Whether the device may read / write the memory (default both). */
  readable?: boolean;
  writable?: boolean;
}

/** One negotiated session with one device; make it with `VfioUserClient.connect`. */
export class VfioUserClient {
  /** The version the server answered. */
  readonly version: { major: number; minor: number };
  /** The server's capabilities, defaults filled in. */
  readonly serverCapabilities: Capabilities;
  /** The DMA message layout spoken on this session. */
  readonly dmaLayout: DmaLayout;
  /** Client memory mapped for DMA, and what the server asked of it. */
  readonly dma = new ClientDmaTable();
  /** Called once when the session ends (err unset when this side closed it). */
  onClose: (err?: VfioError) => void = () => {};

  readonly #main: ClientChannel;
  readonly #twin: ClientChannel | null;
  readonly #maxXfer: number;
  readonly #irqs = new Set<InterruptSet>();
  #closed = false;

  private constructor(
    main: ClientChannel,
    twin: ClientChannel | null,
    version: { major: number; minor: number },
    caps: Capabilities,
    layout: DmaLayout,
    maxXfer: number,
  ) {
    this.#main = main;
    this.#twin = twin;
    this.version = version;
    this.serverCapabilities = caps;
    this.dmaLayout = layout;
    this.#maxXfer = maxXfer;
    for (const ch of twin === null ? [main] : [main, twin]) {
      ch.onCommand = (frame) => this.#serveDma(ch, frame);
      ch.onClose = (err) => this.#ended(err);
    }
  }

  /** Connects to the socket at `path` and negotiates. */
  static connect(path: string, options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
    let transport: Transport;
    try {
      transport = new SocketTransport(UnixSocket.connect(path));
    } catch (err) {
      return Promise.reject(err);
    }
    return VfioUserClient.over(transport, options);
  }

  /** Negotiates over `transport` (an in-memory one, say), which is the client's from here on. */
  static async over(transport: Transport, options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const main = new ClientChannel(transport, { timeoutMs });
    try {
      return await VfioUserClient.#negotiate(main, options, timeoutMs);
    } catch (err) {
      main.close();
      throw err;
    }
  }

  static async #negotiate(main: ClientChannel, options: VfioUserClientOptions, timeoutMs: number): Promise<VfioUserClient> {
    const proposed = options.version ?? { major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR };
    const caps =
      options.capabilities === undefined
        ? {
            maxMsgFds: 16,
            maxDataXferSize: CapabilityDefault.MAX_DATA_XFER_SIZE,
            maxDmaMaps: CapabilityDefault.MAX_DMA_MAPS,
            pgsizes: 4096n,
            writeMultiple: true,
            ...(options.twinSocket === true ? { twinSocket: { supported: true } } : {}),
          }
        : (options.capabilities ?? undefined);
    const frame = await main.request(encodeVersionCommand(main.nextId(), { ...proposed, capabilities: caps }));
    let twinFd: number | null = null;
    try {
      const err = replyError(frame);
      if (err !== null) throw err;
      const reply = decodeVersionReply(frame.body, frame.fds);
      if (reply.major !== proposed.major || reply.minor > proposed.minor) {
        throw new VfioError(
          'EINVAL',
          `the server answered version ${reply.major}.${reply.minor} to a proposal of ${proposed.major}.${proposed.minor}`,
        );
      }
      const ts = reply.capabilities?.twinSocket;
      if (ts?.supported === true && ts.fdIndex !== undefined) twinFd = frame.fds.splice(ts.fdIndex, 1)[0]!;
      const server = withDefaults(reply.capabilities);
      const ours = withDefaults(caps);
      const maxXfer = ours.maxDataXferSize;
      main.setMaxMessageSize(maxMessageSizeFor(maxXfer));
      const ownTwin = twinFd;
      twinFd = null; // UnixSocket takes it, and closes it if its constructor throws
      const twin =
        ownTwin === null
          ? null
          : new ClientChannel(new SocketTransport(new UnixSocket(ownTwin), { maxMessageSize: maxMessageSizeFor(maxXfer) }), { timeoutMs });
      const layout = options.dmaLayout ?? 'spec';
      return new VfioUserClient(main, twin, { major: reply.major, minor: reply.minor }, server, layout, maxXfer);
    } finally {
      closeFds(frame.fds);
      if (twinFd !== null) closeFds([twinFd]);
    }
  }

  /** True when the server set up a twin socket for its DMA messages. */
  get twinSocket(): boolean {
    return this.#twin !== null;
  }

  /** True once the session ended, whichever side ended it. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---- raw ------------------------------------------------------------------

  /**
   * Sends any command and resolves with a copy of its reply, error replies
   * included (the escape hatch for tests). The reply's fds are the caller's.
   */
  request(cmd: number, body: Uint8Array = new Uint8Array(0), options: { fds?: readonly number[]; flags?: number } = {}): Promise<Frame> {
    const id = this.#main.nextId();
    return this.#main.request(encodeMessage(id, cmd, options.flags ?? HeaderFlags.TYPE_COMMAND, body), options.fds);
  }

  // ---- device info ----------------------------------------------------------

  /** DEVICE_GET_INFO: the device's flags and its numbers of regions and IRQ indexes. */
  async getDeviceInfo(): Promise<DeviceInfoReply> {
    return this.#call(encodeDeviceInfoRequest(this.#main.nextId()), decodeDeviceInfoReply);
  }

  /**
   * Region info with its capabilities: asks with argsz 32 and, when the
   * server says the caps need more, asks again with the argsz it named.
   * Pass `argsz` to ask exactly once with it. The reply's `fd` (sent with a
   * complete reply of an mmap-able region) is the caller's to close.
   */
  async getRegionInfo(index: number, options: { argsz?: number } = {}): Promise<RegionInfoReply> {
    const once = (argsz: number): Promise<RegionInfoReply> =>
      this.#call(encodeRegionInfoRequest(this.#main.nextId(), index, argsz), decodeRegionInfoReply);
    if (options.argsz !== undefined) return once(options.argsz);
    const first = await once(Size.REGION_INFO);
    if (first.argsz <= Size.REGION_INFO) return first;
    if (first.fd !== null) closeFds([first.fd]);
    return once(first.argsz);
  }

  /** DEVICE_GET_IRQ_INFO of IRQ index `index`. */
  async getIrqInfo(index: number): Promise<IrqInfoReply> {
    return this.#call(encodeIrqInfoRequest(this.#main.nextId(), index), decodeIrqInfoReply);
  }

  /** The region's ioeventfd sub-regions; the reply's fds are the caller's. */
  async getRegionIoFds(index: number, argsz = 4096): Promise<RegionIoFdsReply> {
    return this.#call(encodeRegionIoFdsRequest(this.#main.nextId(), index, argsz), decodeRegionIoFdsReply);
  }

  // ---- region access --------------------------------------------------------

  /** REGION_READ of `count` bytes at `offset` of region `index`; EIO if the server answers another count. */
  async regionRead(index: number, offset: number, count: number): Promise<Uint8Array> {
    const r = await this.#call(encodeRegionRead(this.#main.nextId(), offset, index, count), (body, fds) =>
      decodeRegionReadReply(body, fds, { maxDataXferSize: this.#maxXfer }),
    );
    if (r.count !== count) throw new VfioError('EIO', `REGION_READ: asked ${count} bytes, got ${r.count}`);
    return r.data;
  }

  /**
   * REGION_WRITE of `data` at `offset` of region `index`; EIO if the server
   * reports another count. Posted: resolves once sent, unanswered.
   */
  async regionWrite(index: number, offset: number, data: Uint8Array, options: PostOptions = {}): Promise<void> {
    const message = encodeRegionWrite(this.#main.nextId(), offset, index, data, { noReply: options.posted === true });
    if (options.posted === true) return this.#main.send(message);
    const r = await this.#call(message, decodeRegionWriteReply);
    if (r.count !== data.length) throw new VfioError('EIO', `REGION_WRITE: wrote ${data.length} bytes, the server says ${r.count}`);
  }

  /** REGION_WRITE_MULTI: up to 200 writes of 1 to 8 bytes; resolves with the count the server reports (undefined when posted). */
  async regionWriteMulti(entries: readonly Omit<WriteMultiEntry, 'count'>[], options: PostOptions = {}): Promise<number | undefined> {
    const message = encodeWriteMulti(this.#main.nextId(), entries, { noReply: options.posted === true });
    if (options.posted === true) {
      this.#main.send(message);
      return undefined;
    }
    return this.#call(message, decodeWriteMultiReply);
  }

  /**
   * Maps the mmap-able areas of region `index` (its sparse areas, or the
   * whole region) from the fd the server sends with the region info. The
   * mapping outlives the session; unmap it when done.
   */
  async mapRegion(index: number, options: { writable?: boolean } = {}): Promise<MappedRegion> {
    const info = await this.getRegionInfo(index);
    try {
      if ((info.flags & RegionFlags.MMAP) === 0 || info.fd === null) {
        throw new VfioError('EINVAL', `region ${index} cannot be mmapped (flags 0x${info.flags.toString(16)}${info.fd === null ? ', no fd' : ''})`);
      }
      const areas = info.sparseMmap ?? [{ offset: 0, size: info.size }];
      const writable = options.writable ?? (info.flags & RegionFlags.WRITE) !== 0;
      return MappedRegion.map(index, info.fd, info.offset, areas, writable);
    } finally {
      if (info.fd !== null) closeFds([info.fd]);
    }
  }

  // ---- DMA ------------------------------------------------------------------

  /**
   * Makes `size` bytes of shared memory (a sealed memfd) and maps them for
   * DMA at `iova`, passing the fd: the server maps the same memory, so the
   * device's accesses never become messages.
   */
  async dmaMapMemory(iova: number, size: number, options: DmaMapOptions = {}): Promise<ClientDmaRegion> {
    const memory = MappedMemory.create(`uvfio-dma-${iova.toString(16)}`, size);
    try {
      return await this.#dmaMap(iova, size, memory.bytes, memory, options);
    } catch (err) {
      memory.close();
      throw err;
    }
  }

  /**
   * Maps `bytes` (client memory the server cannot map) for DMA at `iova`
   * without an fd: the server reaches it through DMA_READ/DMA_WRITE
   * messages, which this client serves.
   */
  async dmaMapMessages(iova: number, bytes: Uint8Array, options: DmaMapOptions = {}): Promise<ClientDmaRegion> {
    return this.#dmaMap(iova, bytes.length, bytes, null, options);
  }

  async #dmaMap(iova: number, size: number, bytes: Uint8Array, memory: MappedMemory | null, options: DmaMapOptions): Promise<ClientDmaRegion> {
    const region: ClientDmaRegion = {
      iova,
      size,
      bytes,
      readable: options.readable ?? true,
      writable: options.writable ?? true,
      byMessages: memory === null,
      memory,
    };
    // Serve the server's messages for it from the moment it may send them.
    this.dma.add(region);
    try {
      const message = encodeDmaMap(this.#main.nextId(), {
        readable: region.readable,
        writable: region.writable,
        offset: 0n,
        address: BigInt(iova),
        size: BigInt(size),
      });
      await this.#call(message, (body, fds) => decodeEmptyReply(Command.DMA_MAP, body, fds), memory === null ? undefined : [memory.fd]);
    } catch (err) {
      this.dma.remove(iova, size);
      throw err;
    }
    return region;
  }

  /** Unmaps [iova, iova+size) (one or more whole mappings) and releases the client's memory of it. */
  async dmaUnmap(iova: number, size: number): Promise<void> {
    await this.#call(encodeDmaUnmap(this.#main.nextId(), { address: BigInt(iova), size: BigInt(size) }), decodeDmaUnmapReply);
    this.dma.remove(iova, size);
  }

  /** Unmaps everything (DMA_UNMAP with flag ALL). */
  async dmaUnmapAll(): Promise<void> {
    await this.#call(encodeDmaUnmap(this.#main.nextId(), { all: true, address: 0n, size: 0n }), decodeDmaUnmapReply);
    this.dma.removeAll();
  }

  // ---- interrupts -----------------------------------------------------------

  /**
   * Creates one eventfd per IRQ of [start, start+count) of `index` and
   * hands them to the server for `action` (default trigger). The returned
   * lines are awaited with `next()`; close them (or the client) when done.
   */
  async setIrqEventfds(index: number, start: number, count: number, action: IrqAction = 'trigger'): Promise<InterruptSet> {
    const set = new InterruptSet(index, start, count);
    try {
      await this.#call(
        encodeSetIrqs(this.#main.nextId(), { index, start, count, action, data: 'eventfd' }),
        (body, fds) => decodeEmptyReply(Command.DEVICE_SET_IRQS, body, fds),
        set.fds,
      );
    } catch (err) {
      set.close();
      throw err;
    }
    this.#irqs.add(set);
    return set;
  }

  /**
   * SET_IRQS without fds: `data` 'none' (the action on every IRQ of the
   * range; count 0 with trigger disables the index), an array of bools
   * (the action where true), or 'deassign' (eventfd data without fds).
   */
  async setIrqs(index: number, start: number, count: number, action: IrqAction, data: 'none' | 'deassign' | readonly boolean[]): Promise<void> {
    const req =
      data === 'none'
        ? ({ index, start, count, action, data: 'none' } as const)
        : data === 'deassign'
          ? ({ index, start, count, action, data: 'eventfd' } as const)
          : ({ index, start, count, action, data: 'bool', values: data } as const);
    await this.#call(encodeSetIrqs(this.#main.nextId(), req), (body, fds) => decodeEmptyReply(Command.DEVICE_SET_IRQS, body, fds));
  }

  // ---- reset, features, migration -------------------------------------------

  /** DEVICE_RESET. */
  async reset(): Promise<void> {
    await this.#call(encodeDeviceReset(this.#main.nextId()), (body, fds) => decodeEmptyReply(Command.DEVICE_RESET, body, fds));
  }

  /**
   * DEVICE_FEATURE. `get` resolves with the feature's data (`room` bytes at
   * most, default 4096); `set` and `probe` with the echoed payload.
   */
  async feature(feature: number, op: 'get' | 'set' | 'probe', data: Uint8Array = new Uint8Array(0), room = 4096): Promise<Uint8Array> {
    const message = encodeDeviceFeature(this.#main.nextId(), {
      feature,
      get: op === 'get',
      set: op === 'set',
      probe: op === 'probe',
      data,
      ...(op === 'get' ? { argsz: Size.DEVICE_FEATURE + Math.max(room, data.length) } : {}),
    });
    const r = await this.#call(message, decodeDeviceFeatureReply);
    return r.data;
  }

  /** MIG_DATA_READ: up to `size` bytes of the device's migration stream (fewer: drained). */
  async migrationDataRead(size: number): Promise<Uint8Array> {
    const r = await this.#call(encodeMigDataRead(this.#main.nextId(), size), (body, fds) =>
      decodeMigDataReadReply(body, fds, { maxDataXferSize: this.#maxXfer }),
    );
    return r.data;
  }

  /** MIG_DATA_WRITE: migration data for a resuming device. */
  async migrationDataWrite(data: Uint8Array): Promise<void> {
    await this.#call(encodeMigDataWrite(this.#main.nextId(), data), (body, fds) => decodeEmptyReply(Command.MIG_DATA_WRITE, body, fds));
  }

  // ---- lifetime ---------------------------------------------------------------

  /**
   * Disconnects. The server then drops this client's DMA mappings and
   * eventfds; the client unmaps its own memory and closes its eventfds.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#main.close();
    this.#twin?.close();
  }

  // ---- internals ------------------------------------------------------------

  /** Sends a command and decodes its reply; the reply's fds go to the decoder (and are closed if it throws). */
  async #call<T>(message: Uint8Array, decode: (body: Uint8Array, fds: readonly number[]) => T, fds?: readonly number[]): Promise<T> {
    const frame = await this.#main.request(message, fds);
    try {
      const err = replyError(frame);
      if (err !== null) throw err;
      return decode(frame.body, frame.fds);
    } catch (err) {
      closeFds(frame.fds);
      throw err;
    }
  }

  #serveDma(channel: ClientChannel, frame: Frame): void {
    const reply = this.dma.serve(frame, this.dmaLayout, this.#maxXfer);
    closeFds(frame.fds);
    if (wantsNoReply(frame.flags)) return;
    try {
      channel.send(reply);
    } catch {
      // The session is ending; nobody waits for this reply.
    }
  }

  #ended(err?: VfioError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#main.close();
    this.#twin?.close();
    for (const set of this.#irqs) set.close();
    this.#irqs.clear();
    this.dma.removeAll();
    this.onClose(err?.code === 'ENOTCONN' ? undefined : err);
  }
}
