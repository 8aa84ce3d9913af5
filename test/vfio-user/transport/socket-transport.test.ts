/**
 * SocketTransport over a real socket pair: how it sizes its reads around
 * messages larger than one read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, sendmsg, socketPair } from '../../../src/native/index.js';
import { Command } from '../../../src/vfio-user/protocol.js';
import { encodeMessage } from '../../../src/vfio-user/serializer.js';
import { SocketTransport } from '../../../src/vfio-user/transport/socket-transport.js';
import { UnixSocket } from '../../../src/vfio-user/transport/unix-socket.js';
import { until } from '../../support/until.js';

test('after a message larger than one read, the next read takes only a header and head, so a large body is received where it goes', async () => {
  const [ours, theirs] = socketPair();
  const large = (id: number) => encodeMessage(id, Command.REGION_WRITE, 0, new Uint8Array(70 * 1024).fill(id));
  const small = (id: number) => encodeMessage(id, Command.REGION_READ, 0, new Uint8Array(16).fill(id));
  const stream = [large(1), large(2), small(3), small(4), small(5)];
  // All of it waits in the socket before the transport reads any.
  for (const m of stream) assert.equal(sendmsg(theirs, m), m.length);
  const socket = new UnixSocket(ours);
  const transport = new SocketTransport(socket);
  const reads: number[] = [];
  const deliver = socket.onData;
  socket.onData = (chunk, fds) => {
    reads.push(chunk.length);
    deliver(chunk, fds);
  };
  const got: Array<{ msgId: number; size: number; byte: number }> = [];
  transport.onMessage = (frame) => got.push({ msgId: frame.msgId, size: frame.size, byte: frame.body[frame.body.length - 1]! });
  await until(() => got.length === stream.length, 'every message');
  assert.deepEqual(
    got,
    stream.map((m, i) => ({ msgId: i + 1, size: m.length, byte: m[m.length - 1]! })),
  );
  // 64 KiB (the first message's start; its rest is read into its own
  // buffer), then 32 bytes: message 2's header and head (its rest read
  // likewise), message 3 (small: reads go back to full size), the rest.
  assert.deepEqual(reads, [64 * 1024, 32, 32, 2 * small(0).length]);
  transport.destroy();
  close(theirs);
});
