/**
 * Trace points of the vfio-user server, as `node:diagnostics_channel`
 * channels: what `uvfio trace` and other observers subscribe to (with
 * the DMA channel of ../iommufd/dma-trace.ts, whose owners are DmaOwner). A channel
 * costs one `hasSubscribers` check per event while nobody listens; the
 * objects below (and the byte copies in them) are made only while someone
 * does. Subscribers run synchronously on the server's path: keep them quick,
 * and never keep the `request`/`reply` arrays' buffers for reuse (they are
 * copies made for the subscriber, but the same object goes to every one).
 *
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(MESSAGE_CHANNEL, (m) => console.log((m as MessageTrace).cmd));
 * ```
 */
import { channel } from 'node:diagnostics_channel';
import type { PeerCapabilities } from './messages.js';

/** Name of the channel of every command a client sent and its outcome. */
export const MESSAGE_CHANNEL = 'uvfio:vfio-user:message';
/** Name of the channel of sessions opening, binding and closing. */
export const SESSION_CHANNEL = 'uvfio:vfio-user:session';
/** Name of the channel of interrupts a device signals to a client's eventfd. */
export const INTERRUPT_CHANNEL = 'uvfio:vfio-user:interrupt';

/**
 * One command served (published once it is done: replied to, or failed).
 * Replies to the server's own DMA_READ/DMA_WRITE messages are not commands
 * and are not published here.
 */
export interface MessageTrace {
  /** the device's name (its UUID under the daemon) */
  device: string;
  /** the session's id, unique in the process (see ClientInfo.id) */
  client: number;
  msgId: number;
  /** command id (Command) */
  cmd: number;
  /** the request header's flags (HeaderFlags) */
  flags: number;
  /** a copy of the request's body (the bytes after the 16-byte header) */
  request: Uint8Array;
  /** fds the request carried */
  fds: number;
  /** 0 on success, else the errno of the failure (whether or not it was sent) */
  errno: number;
  /** a copy of the reply's body (after its header); null when no reply was sent */
  reply: Uint8Array | null;
  /** from the start of the server's work on it to its reply (or failure), in ns */
  latencyNs: number;
  /** the command asked for no reply (NO_REPLY: a posted write, as QEMU sends them) */
  posted: boolean;
}

/** A session opened: a client connected to a device. */
export interface SessionOpenedTrace {
  event: 'opened';
  device: string;
  client: number;
  /** SO_PEERCRED of the connecting process; -1 when the kernel would not say */
  pid: number;
  uid: number;
  gid: number;
  /** ms since the epoch */
  connectedAt: number;
}

/** A session's VFIO_USER_VERSION succeeded: its file is bound. */
export interface SessionBoundTrace {
  event: 'bound';
  device: string;
  client: number;
  version: { major: number; minor: number };
  /** the capabilities the server answered with */
  capabilities: PeerCapabilities;
}

/** A session ended, whatever ended it; published once its teardown completed. */
export interface SessionClosedTrace {
  event: 'closed';
  device: string;
  client: number;
  /** a sentence: why it ended */
  reason: string;
}

/** What SESSION_CHANNEL publishes. */
export type SessionTrace = SessionOpenedTrace | SessionBoundTrace | SessionClosedTrace;

/**
 * An interrupt a device signalled to a client's eventfd (SET_IRQS
 * ACTION_TRIGGER). One raised while that client's command is served (and
 * traced) is published just after the command's MessageTrace: cause, then
 * effect. (DMA the command does is published as it happens, so before it.)
 */
export interface InterruptTrace {
  device: string;
  client: number;
  /** IRQ index (PciIrq: INTX 0, MSI 1, MSIX 2, ERR 3, REQ 4) */
  index: number;
  /** the vector (sub-index) within it */
  vector: number;
}

/**
 * The owner a session gives its address space (IoAddressSpace.traceOwner):
 * how the DMA channel of ../iommufd/dma-trace.ts names the device and client.
 */
export interface DmaOwner {
  device: string;
  client: number;
}

/** The channels themselves (the server publishes; anyone may subscribe by name). */
export const messageChannel = channel(MESSAGE_CHANNEL);

/**
 * 1 while the message channel has subscribers, else 0: what the native
 * layer reads before it answers a region access itself (a traced one must
 * reach the session and its trace; see RegionAnswers). Kept by the
 * channel's own subscribe and unsubscribe (what diagnostics_channel's
 * module-level subscribe() calls too), wrapped here.
 */
export const messageTraceCell = new Int32Array(1);
for (const method of ['subscribe', 'unsubscribe'] as const) {
  Object.defineProperty(messageChannel, method, {
    configurable: true,
    value(this: typeof messageChannel, ...args: unknown[]): unknown {
      // The prototype's method of the moment: diagnostics_channel swaps it as subscribers come and go.
      const result: unknown = (Object.getPrototypeOf(this) as Record<string, (...a: unknown[]) => unknown>)[method]!.apply(this, args);
      messageTraceCell[0] = this.hasSubscribers ? 1 : 0;
      return result;
    },
  });
}
export const sessionChannel = channel(SESSION_CHANNEL);
export const interruptChannel = channel(INTERRUPT_CHANNEL);
