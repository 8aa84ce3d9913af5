/**
 * The far end of a MemoryTransport, played by a test: attached to a
 * server's device it is a client that reaches the real session and
 * handlers with no socket in between; handed to VfioUserClient.over() it
 * plays the server.
 */
import type { VfioDevice } from '../../src/core/index.js';
import { dup } from '../../src/native/index.js';
import { MemoryTransport, type VfioUserServer } from '../../src/vfio-user/index.js';
import { Peer } from './server-harness.js';

export class MemoryPeer extends Peer {
  readonly transport = new MemoryTransport();

  constructor() {
    super();
    this.transport.onSend = (message, fds) => this.received(message, fds);
    this.transport.onHangUp = () => this.ended();
  }

  /** A peer that is a client of `device`, served by `server` over memory. */
  static attached(server: VfioUserServer, device: VfioDevice): MemoryPeer {
    const peer = new MemoryPeer();
    server.attach(device, peer.transport);
    return peer;
  }

  /** Like a socket, the caller keeps its fds: the other side gets duplicates. */
  write(bytes: Uint8Array, fds: readonly number[] = []): void {
    this.transport.push(
      bytes,
      fds.map((fd) => dup(fd)),
    );
  }

  close(): void {
    this.transport.hangUp();
  }
}
