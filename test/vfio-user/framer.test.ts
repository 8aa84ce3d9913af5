import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command, encodeMessage, encodeRegionWrite, HeaderFlags, maxMessageSizeFor, MessageFramer, readHeader } from '../../src/vfio-user/index.js';
import { concat, cut, prng, Recorder } from './harness.js';
import { samples } from './samples.js';

const all = samples();

function fdsFor(base: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => base + i);
}

function assertSame(rec: Recorder, msgs: readonly Uint8Array[]): void {
  assert.equal(rec.frames.length, msgs.length);
  rec.frames.forEach((f, i) => {
    const m = msgs[i]!;
    const h = readHeader(m);
    assert.equal(f.msgId, h.msgId);
    assert.equal(f.cmd, h.cmd);
    assert.equal(f.size, m.length);
    assert.equal(f.flags, h.flags);
    assert.deepEqual(f.body, m.subarray(16));
  });
}

describe('framer', () => {
  it('frames every sample split at every byte boundary, fds on the first byte', () => {
    for (const s of all) {
      const fds = fdsFor(500, s.fds);
      for (let at = 1; at < s.bytes.length; at++) {
        const rec = new Recorder();
        rec.push(s.bytes.subarray(0, at), fds);
        rec.push(s.bytes.subarray(at));
        assertSame(rec, [s.bytes]);
        assert.deepEqual(rec.frames[0]!.fds, fds, `${s.name} cut at ${at}`);
        assert.deepEqual(rec.returned, []);
        assert.equal(rec.close(), false);
      }
    }
  });

  it('frames every sample fed one byte at a time', () => {
    for (const s of all) {
      const rec = new Recorder();
      for (let i = 0; i < s.bytes.length; i++) rec.push(s.bytes.subarray(i, i + 1), i === 0 ? fdsFor(7, s.fds) : []);
      assertSame(rec, [s.bytes]);
      assert.deepEqual(rec.frames[0]!.fds, fdsFor(7, s.fds), s.name);
    }
  });

  it('frames all samples coalesced into one stream, cut at every point', () => {
    const stream = concat(all.map((s) => s.bytes));
    for (let at = 1; at < stream.length; at += 7) {
      const rec = new Recorder();
      rec.push(stream.subarray(0, at));
      rec.push(stream.subarray(at));
      assertSame(
        rec,
        all.map((s) => s.bytes),
      );
    }
  });

  it('frames coalesced samples cut into random pieces, each with its fds', () => {
    const r = prng(42);
    for (let round = 0; round < 200; round++) {
      const picked = Array.from({ length: 1 + r.int(8) }, () => r.pick(all));
      const rec = new Recorder();
      let nextFd = 1000;
      const want: number[][] = [];
      // One push per message start, as recvmsg delivers an fd-carrying sendmsg.
      for (const s of picked) {
        const fds = fdsFor(nextFd, s.fds);
        nextFd += s.fds;
        want.push(fds);
        const cuts = Array.from({ length: r.int(4) }, () => 1 + r.int(s.bytes.length - 1)).sort((a, b) => a - b);
        cut(s.bytes, cuts).forEach((piece, i) => rec.push(piece, i === 0 ? fds : []));
      }
      assertSame(
        rec,
        picked.map((s) => s.bytes),
      );
      assert.deepEqual(
        rec.frames.map((f) => f.fds),
        want,
      );
      assert.deepEqual(rec.returned, []);
    }
  });

  it("gives a chunk's fds to the last message starting in it (Linux recvmsg)", () => {
    const a = encodeRegionWrite(1, 0, 0, new Uint8Array(4));
    const b = encodeMessage(2, Command.DMA_MAP, 0, new Uint8Array(32));
    const rec = new Recorder();
    rec.push(concat([a, b]), [5]);
    assert.deepEqual(
      rec.frames.map((f) => f.fds),
      [[], [5]],
    );
    // ...also when the owner is cut short by the chunk's end.
    const rec2 = new Recorder();
    rec2.push(concat([a, b.subarray(0, 20)]), [6]);
    rec2.push(b.subarray(20));
    assert.deepEqual(
      rec2.frames.map((f) => f.fds),
      [[], [6]],
    );
    // ...or by a header cut in two.
    const rec3 = new Recorder();
    rec3.push(concat([a, b.subarray(0, 3)]), [7]);
    rec3.push(b.subarray(3));
    assert.deepEqual(
      rec3.frames.map((f) => f.fds),
      [[], [7]],
    );
  });

  it('hands back fds that arrive with a chunk in which no message starts', () => {
    const m = encodeRegionWrite(1, 0, 0, new Uint8Array(64));
    const rec = new Recorder();
    rec.push(m.subarray(0, 30));
    rec.push(m.subarray(30, 40), [8, 9]);
    assert.deepEqual(rec.returned, [8, 9]);
    rec.push(m.subarray(40));
    assert.equal(rec.frames.length, 1);
    assert.deepEqual(rec.frames[0]!.fds, []);
  });

  it('assembles a 1 MiB write whole however it is cut', () => {
    const data = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
    const m = encodeRegionWrite(3, 0, 2, data);
    assert.equal(m.length, maxMessageSizeFor(1 << 20));
    for (const step of [1000, 4096, 32768, 65536, 212_992]) {
      const rec = new Recorder();
      for (let o = 0; o < m.length; o += step) rec.push(m.subarray(o, o + step));
      assert.equal(rec.frames.length, 1);
      assert.deepEqual(rec.frames[0]!.body.subarray(16), data);
    }
  });

  it('lets the rest of a large body be received straight into its buffer (bodyRoom, filled)', () => {
    const data = new Uint8Array(300_000).map((_, i) => (i * 13) & 0xff);
    const m = encodeRegionWrite(4, 0, 2, data);
    const bodies: Uint8Array[] = [];
    const f = new MessageFramer({ onMessage: (fr) => void bodies.push(fr.body.slice()) });
    assert.equal(f.bodyRoom(), null, 'no body under way');
    assert.deepEqual(f.push(m.subarray(0, 1000)), []);
    let rest = m.subarray(1000);
    while (rest.length > 0) {
      const room = f.bodyRoom()!;
      const n = Math.min(room.length, 70_000);
      room.set(rest.subarray(0, n));
      assert.deepEqual(f.filled(n, n === rest.length ? [] : []), []);
      rest = rest.subarray(n);
    }
    assert.equal(f.bodyRoom(), null);
    assert.equal(bodies.length, 1);
    assert.deepEqual(bodies[0]!.subarray(16), data);
    assert.deepEqual(f.filled(10, [77]), [77], 'bytes with no body under way: the fds come back');
  });

  it('puts the rest of a large body where place() says, asked once with the header and the first 16 body bytes', () => {
    const data = new Uint8Array(100_000).map((_, i) => (i * 11 + 3) & 0xff);
    const m = encodeRegionWrite(5, 0x40, 2, data);
    const dest = new Uint8Array(data.length);
    const asked: Array<{ cmd: number; size: number; head: number[] }> = [];
    const frames: Array<{ body: number[]; placed: Uint8Array | null | undefined }> = [];
    const f = new MessageFramer({
      onMessage: (fr) => void frames.push({ body: [...fr.body], placed: fr.placed }),
      place: (h, head) => {
        asked.push({ cmd: h.cmd, size: h.size, head: [...head] });
        return dest;
      },
    });
    f.push(m.subarray(0, 20_000));
    assert.deepEqual(asked, [{ cmd: Command.REGION_WRITE, size: m.length, head: [...m.subarray(16, 32)] }]);
    // Taken over mid-way: the unfinished message is its bytes as they came.
    assert.deepEqual(f.unfinished().bytes, m.subarray(0, 20_000));
    const room = f.bodyRoom()!;
    assert.equal(room.buffer, dest.buffer, 'the rest is received straight into place');
    room.set(m.subarray(20_000, 50_000));
    f.filled(30_000);
    f.push(m.subarray(50_000));
    assert.equal(frames.length, 1);
    assert.deepEqual(frames[0]!.body, [...m.subarray(16, 32)], 'the body is the access struct');
    assert.equal(frames[0]!.placed, dest);
    assert.deepEqual(dest, data);
    assert.equal(asked.length, 1);
  });

  it('does not place a body that is whole in its chunk, small, carries fds, or that place() declines', () => {
    const big = encodeRegionWrite(6, 0, 2, new Uint8Array(40_000).fill(9));
    const small = encodeRegionWrite(7, 0, 2, new Uint8Array(8000).fill(8));
    let asked = 0;
    const rec = new Recorder({ place: () => (asked++, null) });
    rec.push(big);
    rec.push(small.subarray(0, 100));
    rec.push(small.subarray(100));
    assert.equal(asked, 0);
    rec.push(big.subarray(0, 1000), [42]);
    rec.push(big.subarray(1000));
    assert.equal(asked, 0, 'a message with fds is never placed');
    rec.push(big.subarray(0, 1000));
    rec.push(big.subarray(1000));
    assert.equal(asked, 1);
    assert.equal(rec.frames.length, 4);
    for (const fr of rec.frames) assert.equal(fr.placed ?? null, null);
    assert.deepEqual(rec.frames[3]!.body, big.subarray(16), 'declined: put together as usual');
  });

  it('copyFrame puts a placed rest back behind the body', () => {
    const data = new Uint8Array(30_000).map((_, i) => i & 0xff);
    const m = encodeRegionWrite(8, 0, 2, data);
    const rec = new Recorder({ place: () => new Uint8Array(data.length) });
    rec.push(m.subarray(0, 5000));
    rec.push(m.subarray(5000));
    assert.deepEqual(rec.frames[0]!.body, m.subarray(16));
    assert.equal(rec.frames[0]!.placed, null);
  });

  it('a large body put together in a pooled buffer stays as it was while kept, and goes back to the pool after', () => {
    const a = encodeRegionWrite(1, 0, 2, new Uint8Array(100_000).fill(1));
    const b = encodeRegionWrite(2, 0, 2, new Uint8Array(100_000).fill(2));
    let keep = true;
    const seen: Uint8Array[] = [];
    const f = new MessageFramer({
      onMessage: (fr) => {
        seen.push(fr.body);
        if (keep) f.keepBody();
      },
    });
    const feed = (m: Uint8Array): void => {
      f.push(m.subarray(0, 50_000));
      f.push(m.subarray(50_000));
    };
    feed(a);
    keep = false;
    feed(b);
    assert.ok(
      seen[0]!.subarray(16).every((x) => x === 1),
      'the kept body was not reused for the next one',
    );
    assert.notEqual(seen[0]!.buffer, seen[1]!.buffer);
    f.releaseBody();
    feed(b);
    assert.ok(seen[2]!.subarray(16).every((x) => x === 2));
  });

  it('emits a view into the chunk when the message is whole (zero copy)', () => {
    const m = encodeRegionWrite(1, 0, 0, new Uint8Array([1, 2, 3, 4]));
    let seen: Uint8Array | undefined;
    const f = new MessageFramer({ onMessage: (fr) => (seen = fr.body) });
    f.push(m);
    assert.equal(seen!.buffer, m.buffer);
    assert.equal(seen!.byteOffset, m.byteOffset + 16);
  });

  it('fails the stream with EINVAL for msg_size below 16, handing back every fd', () => {
    const bad = encodeMessage(9, Command.REGION_READ, 0, new Uint8Array(0));
    bad[4] = 15;
    const rec = new Recorder();
    rec.push(bad, [1, 2]);
    assert.equal(rec.framer.error?.error.code, 'EINVAL');
    assert.equal(rec.framer.error?.header.msgId, 9);
    assert.deepEqual(rec.returned, [1, 2]);
    rec.push(encodeRegionWrite(1, 0, 0, new Uint8Array(4)), [3]);
    assert.deepEqual(rec.returned, [1, 2, 3]);
    assert.equal(rec.frames.length, 0);
  });

  it('fails the stream with EMSGSIZE above the limit, even with the header split', () => {
    const big = encodeRegionWrite(4, 0, 0, new Uint8Array(100));
    const rec = new Recorder({ maxMessageSize: 100 });
    rec.push(big.subarray(0, 5), [1]);
    rec.push(big.subarray(5), [2]);
    assert.equal(rec.framer.error?.error.code, 'EMSGSIZE');
    assert.deepEqual(rec.returned.sort(), [1, 2]);
  });

  it('applies a new limit to later messages', () => {
    const f = new Recorder({ maxMessageSize: 64 });
    f.push(encodeRegionWrite(1, 0, 0, new Uint8Array(32)));
    f.framer.setMaxMessageSize(1024);
    f.push(encodeRegionWrite(2, 0, 0, new Uint8Array(512)));
    assert.equal(f.frames.length, 2);
    assert.throws(() => f.framer.setMaxMessageSize(8), { code: 'EINVAL' });
  });

  it('returns the fds of a message cut short by close()', () => {
    const m = encodeMessage(1, Command.DMA_MAP, 0, new Uint8Array(32));
    const rec = new Recorder();
    rec.push(m.subarray(0, 10), [4]);
    assert.equal(rec.framer.bufferedBytes, 10);
    assert.equal(rec.close(), true);
    assert.deepEqual(rec.returned, [4]);
  });

  it('fails with EIO when the handler throws, and hands back later fds', () => {
    const a = encodeRegionWrite(1, 0, 0, new Uint8Array(4));
    const b = encodeMessage(2, Command.DMA_MAP, 0, new Uint8Array(32));
    const f = new MessageFramer({
      onMessage: (fr) => {
        if (fr.msgId === 1) throw new Error('boom');
      },
    });
    const back = f.push(concat([a, b]), [6]);
    assert.equal(f.error?.error.code, 'EIO');
    assert.deepEqual(back, [6]);
  });

  it('frames header-only messages (DEVICE_RESET, error replies)', () => {
    const rec = new Recorder();
    rec.push(encodeMessage(1, Command.DEVICE_RESET, HeaderFlags.TYPE_COMMAND));
    rec.push(encodeMessage(2, Command.REGION_READ, HeaderFlags.TYPE_REPLY | HeaderFlags.ERROR, undefined, 22));
    assert.equal(rec.frames.length, 2);
    assert.equal(rec.frames[1]!.errorNo, 22);
    assert.equal(rec.frames[0]!.body.length, 0);
  });
});
