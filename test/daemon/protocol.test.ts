import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { LineDecoder, MAX_LINE_BYTES, encodeLine } from '../../src/daemon/protocol.js';

describe('control protocol framing', () => {
  it('finds the same lines whatever the chunking', () => {
    const text = encodeLine({ v: 1, id: 1, op: 'list', args: { defined: true } }) + encodeLine({ id: 2, ok: true, result: { é: 'ü' } });
    const bytes = Buffer.from(text);
    const want = text.trimEnd().split('\n');
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (const step of [1, 7]) {
        const d = new LineDecoder();
        const got = [...d.push(bytes.subarray(0, cut))];
        for (let i = cut; i < bytes.length; i += step) got.push(...d.push(bytes.subarray(i, Math.min(i + step, bytes.length))));
        assert.deepEqual(got, want, `cut ${cut} step ${step}`);
        assert.equal(d.buffered, 0);
      }
    }
  });

  it('refuses a line longer than the limit', () => {
    const d = new LineDecoder();
    d.push(Buffer.alloc(MAX_LINE_BYTES - 1, 0x41));
    assert.throws(() => d.push(Buffer.alloc(2, 0x41)), { code: 'EMSGSIZE' });
  });
});
