/**
 * The server's side of VFIO_USER_VERSION as a pure function: from the
 * client's proposal and the server's limits, the version and capabilities
 * to answer with and the settings the session runs under.
 *
 * The reply names only capabilities the client proposed (the spec: "a
 * subset of those proposed"), each narrowed to what both sides support.
 * Values stay within what QEMU's client accepts: it refuses a reply whose
 * max_msg_fds exceeds 16, max_dma_maps 65535, max_bitmap_size 256 MiB, or
 * whose pgsizes has bits below 4 KiB.
 */
import { VfioError } from '../base/errors.js';
import type { DmaLayout } from './context.js';
import { DEFAULT_LIMITS, type ResourceLimits } from './limits.js';
import type { PeerCapabilities, VersionMessage } from './messages.js';
import { CapabilityDefault } from './protocol.js';
import { chooseVersion, withDefaults } from './version.js';

/**
 * What a server accepts from its clients (the resource limits of
 * limits.ts) and how it talks to them.
 */
export interface ServerLimits extends ResourceLimits {
  /** set up a twin socket for a client that supports one */
  twinSocket: boolean;
  /**
   * Layout of DMA_READ/DMA_WRITE data. 'auto': the spec's (data at body
   * offset 16) for every client: QEMU 11.1.3, which proposes version 0.0,
   * was measured live (a guest's virtio-blk over DMA messages) to read and
   * write its data there too. 'qemu' (offset 12, after a 32-bit count, as
   * QEMU's source declared the struct when its client was merged) stays
   * for a client built that way.
   */
  dmaLayout: 'auto' | DmaLayout;
}

/** A server's limits unless told otherwise: limits.ts's defaults, a twin socket, the DMA layout the client's version implies. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  ...DEFAULT_LIMITS,
  twinSocket: true,
  dmaLayout: 'auto',
};

/** Page sizes this server maps: any power of two from 4 KiB up. */
const SERVER_PGSIZES = 0xffff_ffff_ffff_f000n;
/** The largest dirty bitmap QEMU accepts. */
const MAX_BITMAP = CapabilityDefault.MIGRATION_MAX_BITMAP_SIZE;

/** The outcome of a successful negotiation. */
export interface Negotiated {
  version: { major: number; minor: number };
  /** capabilities of the reply (twin_socket.fd_index is added once the socket exists) */
  reply: PeerCapabilities;
  /** data bytes the server accepts per message */
  maxDataXferSize: number;
  /** data bytes per server-to-client message: what both sides accept */
  dmaMaxXfer: number;
  /** fds the client accepts per message (0: send it none) */
  clientMaxMsgFds: number;
  maxDmaMaps: number;
  twinSocket: boolean;
  dmaLayout: DmaLayout;
  writeMultiple: boolean;
  /** The smallest DMA page size both sides agreed on (the lowest bit of pgsizes): DMA_MAP is refused for less. */
  dmaPageSize: number;
}

/** EINVAL when the versions or capabilities cannot be reconciled. */
export function negotiate(client: VersionMessage, limits: ServerLimits): Negotiated {
  const version = chooseVersion(client);
  const proposed = client.capabilities ?? {};
  const theirs = withDefaults(client.capabilities);
  const reply: PeerCapabilities = {};
  const maxDmaMaps = Math.min(theirs.maxDmaMaps, limits.maxDmaMaps);
  if (proposed.maxMsgFds !== undefined) reply.maxMsgFds = limits.maxMsgFds;
  if (proposed.maxDataXferSize !== undefined) reply.maxDataXferSize = limits.maxDataXferSize;
  if (proposed.maxDmaMaps !== undefined) reply.maxDmaMaps = maxDmaMaps;
  if (proposed.pgsizes !== undefined) {
    const pgsizes = proposed.pgsizes & SERVER_PGSIZES;
    if (pgsizes === 0n) throw new VfioError('EINVAL', 'VFIO_USER_VERSION: no proposed DMA page size is 4 KiB or more');
    reply.pgsizes = pgsizes;
  }
  if (proposed.writeMultiple !== undefined) reply.writeMultiple = proposed.writeMultiple;
  if (proposed.migration !== undefined) {
    reply.migration = {
      pgsize: proposed.migration.pgsize ?? CapabilityDefault.MIGRATION_PGSIZE,
      maxBitmapSize: Math.min(proposed.migration.maxBitmapSize ?? MAX_BITMAP, MAX_BITMAP),
    };
  }
  // A twin socket travels as an fd: only to a client that takes fds.
  const twinSocket = limits.twinSocket && theirs.twinSocket && theirs.maxMsgFds > 0;
  if (proposed.twinSocket !== undefined) reply.twinSocket = { supported: twinSocket };
  return {
    version,
    reply,
    maxDataXferSize: limits.maxDataXferSize,
    dmaMaxXfer: Math.min(limits.maxDataXferSize, theirs.maxDataXferSize),
    clientMaxMsgFds: theirs.maxMsgFds,
    maxDmaMaps,
    twinSocket,
    dmaLayout: limits.dmaLayout === 'auto' ? 'spec' : limits.dmaLayout,
    writeMultiple: theirs.writeMultiple,
    // Without pgsizes in the proposal, the spec's default: 4 KiB pages.
    dmaPageSize: lowestBit(reply.pgsizes ?? CapabilityDefault.PGSIZES),
  };
}

function lowestBit(mask: bigint): number {
  return Number(mask & -mask);
}
