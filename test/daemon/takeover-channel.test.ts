/**
 * The takeover channel over a real socketpair: a message with more fds
 * than one sendmsg carries arrives whole with every fd, each the same file
 * as the one sent; a message larger than the socket buffer arrives whole;
 * an answer that does not come is ETIMEDOUT, a peer that hangs up is
 * ECONNRESET, and an abort from the peer is thrown with its errno.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { TakeoverChannel } from '../../src/daemon/takeover-channel.js';
import { closeFds, eventfd, eventfdRead, eventfdWrite, openFdCount, socketPair } from '../../src/native/index.js';
import { UnixSocket } from '../../src/vfio-user/index.js';

function pair(): [TakeoverChannel, TakeoverChannel] {
  const [a, b] = socketPair();
  return [new TakeoverChannel(new UnixSocket(a)), new TakeoverChannel(new UnixSocket(b))];
}

describe('TakeoverChannel', () => {
  it('carries 600 fds (in batches) and a 6 MiB payload in one message; each fd is the file sent', async () => {
    const before = openFdCount();
    const [a, b] = pair();
    const sent = Array.from({ length: 600 }, () => eventfd(0, { nonblock: true }));
    const blob = new Uint8Array(6 << 20);
    for (let i = 0; i < blob.length; i += 4099) blob[i] = i & 0xff;
    const sending = a.send({ op: 'state', blob, n: 600 }, sent);
    const got = await b.receive<{ op: string; blob: Uint8Array; n: number }>(10_000);
    await sending;
    assert.equal(got.fds.length, 600);
    assert.equal(got.message.n, 600);
    assert.ok(Buffer.from(got.message.blob).equals(Buffer.from(blob)), 'the payload, byte for byte');
    for (const [i, fd] of got.fds.entries()) {
      eventfdWrite(sent[i]!, i + 1);
      assert.equal(eventfdRead(fd), BigInt(i + 1), `fd ${i} is the eventfd sent as ${i}`);
    }
    closeFds(got.fds);
    closeFds(sent);
    a.close();
    b.close();
    assert.equal(openFdCount(), before);
  });

  it('ETIMEDOUT when no answer comes; ECONNRESET once the peer hangs up; a peer abort is thrown with its errno', async () => {
    const [a, b] = pair();
    await assert.rejects(b.receive(50), (e: Error & { code?: string }) => e.code === 'ETIMEDOUT');
    await a.send({ op: 'abort', code: 'ENOSPC', message: 'no room for it here' });
    await assert.rejects(b.expect('state', 1000), (e: Error & { code?: string }) => e.code === 'ENOSPC' && e.message === 'no room for it here');
    await a.send({ op: 'released' });
    await assert.rejects(b.expect('state', 1000), (e: Error & { code?: string }) => e.code === 'EPROTO');
    a.close();
    await assert.rejects(b.receive(1000), (e: Error & { code?: string }) => e.code === 'ECONNRESET');
    b.close();
  });
});
