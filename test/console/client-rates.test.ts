/** The console's view of clients: rates from two reads of the counters, mapping totals, a bounded list. */
import { strict as assert } from 'node:assert';
import { it } from 'node:test';
import { ClientRateMeter, DMA_LISTED } from '../../src/console/client-rates.js';
import type { ClientInfo } from '../../src/vfio-user/client-info.js';

function client(id: number, messagesIn: number, interrupts: number, maps = 0): ClientInfo {
  return {
    id,
    device: 'd',
    pid: 100 + id,
    uid: 0,
    gid: 0,
    command: 'qemu-system-x86_64 -machine q35',
    connectedAt: 1,
    bound: true,
    counters: { messagesIn, repliesOut: messagesIn, errors: 0, bytesIn: messagesIn * 32, bytesOut: messagesIn * 16, interrupts },
    dma: Array.from({ length: maps }, (_, i) => ({ iova: i * 4096, size: 4096, backing: 'fd' as const, readable: true, writable: i % 2 === 0 })),
  };
}

it('has no rate at the first read, then per-second differences; forgets clients gone', () => {
  const meter = new ClientRateMeter();
  const first = meter.read(new Map([['d', [client(1, 10, 0)]]]), 1000);
  assert.equal(first.get('d')![0]!.rates, null);
  const second = meter.read(new Map([['d', [client(1, 60, 20), client(2, 5, 0)]]]), 3000);
  assert.deepEqual(second.get('d')![0]!.rates, { messages: 25, interrupts: 10, bytesIn: 800, bytesOut: 400, errors: 0 });
  assert.equal(second.get('d')![1]!.rates, null, 'a new client has no rate yet');
  meter.read(new Map([['d', []]]), 4000);
  assert.equal(meter.read(new Map([['d', [client(1, 100, 0)]]]), 5000).get('d')![0]!.rates, null, 'a client gone is forgotten');
});

it('totals every mapping and lists the first few', () => {
  const meter = new ClientRateMeter();
  const [c] = meter.read(new Map([['d', [client(1, 0, 0, 1000)]]])).get('d')!;
  assert.equal(c!.dma.count, 1000);
  assert.equal(c!.dma.bytes, 1000 * 4096);
  assert.equal(c!.dma.mappings.length, DMA_LISTED);
  assert.deepEqual(c!.dma.mappings[1], { iova: 4096, size: 4096, backing: 'fd', readable: true, writable: false });
});
