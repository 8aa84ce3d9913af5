/**
 * The vfio-user wire codec: pure functions over bytes, no sockets.
 *
 * - protocol: command ids, header flags, struct sizes, capability names
 * - header: the 16-byte message header
 * - framer: the incremental framer (chunks + fds in, whole messages out)
 * - decoder / reply-decoder: typed decoding of commands and replies
 * - serializer: encoders for every message, with buffer-reusing hot paths
 * - version: the VERSION handshake and its capabilities JSON
 * - region-info: region info replies and their capability chains
 *
 * Transports (transport/): what carries messages. SocketTransport (a UNIX
 * stream socket with fd passing: UnixSocket, UnixServer) and
 * MemoryTransport (messages handed in by code), behind the Transport
 * interface.
 *
 * On top of them:
 * - server: VfioUserServer, a socket per device of a VfioCore; session,
 *   dispatch and handlers/ serve one client (negotiation, client-memory,
 *   dma-channel, irq-notifiers, eventfd-notifier, device-shape are its
 *   parts); limits: the one table of what a client may make the server hold
 * - client: VfioUserClient, the library a test or tool drives a device with
 */
export * from './protocol.js';
export * from './header.js';
export * from './messages.js';
export * from './context.js';
export * from './framer.js';
export * from './version.js';
export * from './region-info.js';
export * from './decoder.js';
export {
  replyError,
  decodeVersionReply,
  decodeEmptyReply,
  decodeDmaUnmapReply,
  decodeDeviceInfoReply,
  decodeIrqInfoReply,
  decodeRegionIoFdsReply,
  decodeRegionReadReply,
  decodeRegionWriteReply,
  decodeDmaReadReply,
  decodeDmaWriteReply,
  decodeWriteMultiReply,
  decodeDeviceFeatureReply,
  decodeMigDataReadReply,
} from './reply-decoder.js';
export * from './serializer.js';
export * from './feature-data.js';
export {
  clientPeer,
  filePeer,
  dmaLoggingReport,
  migrate,
  migrationFlags,
  migrationState,
  setMigrationState,
  startDmaLogging,
  stopDmaLogging,
  type MigrateOptions,
  type MigrationPeer,
  type MigrationStats,
} from './client/migration.js';
export { VfioUserServer, type VfioUserServerOptions, type DeviceServingState } from './server.js';
export type { SessionState, SocketState, QueuedCommand, DmaMappingState, IrqState } from './session-state.js';
export type { Transport, TransportHandover } from './transport/transport.js';
export { SocketTransport, type SocketTransportOptions } from './transport/socket-transport.js';
export { MemoryTransport } from './transport/memory-transport.js';
export { UnixSocket, type CloseHandler, type DataHandler } from './transport/unix-socket.js';
export { UnixServer, type ListenOptions } from './transport/unix-server.js';
export type { ServerLog } from './session.js';
export type { ClientInfo, DmaMappingInfo } from './client-info.js';
export type { ClientIdentity } from './client-identity.js';
export type { SessionCounters } from './counters.js';
export * from './trace.js';
export { DEFAULT_SERVER_LIMITS, negotiate, type Negotiated, type ServerLimits } from './negotiation.js';
export {
  LIMITS,
  DEFAULT_LIMITS,
  parseLimits,
  formatLimit,
  defaultWords,
  limitsHelp,
  ServerBudgets,
  type ClientBudgets,
  type ResourceLimits,
  type LimitSpec,
  type LimitUnit,
  type LimitScope,
} from './limits.js';
export {
  VfioUserClient,
  InterruptLine,
  InterruptSet,
  MappedRegion,
  type MappedArea,
  type ClientDmaRegion,
  type DmaServed,
  type VfioUserClientOptions,
  type PostOptions,
  type DmaMapOptions,
} from './client.js';
