/**
 * Exhaustion by fds: clients hand over interrupt eventfds until the daemon
 * would run out of file descriptors. Each client holds at most `irq-fds`,
 * all of them together at most `client-fds`; past either, SET_IRQS fails
 * with ENOSPC (logged naming the client), and the daemon, its bystander
 * and its control socket carry on.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { PciIrq } from '../../src/base/uapi.js';
import { ERRNO } from '../../src/base/errors.js';
import { closeFds, eventfd } from '../../src/native/index.js';
import { Command, encodeSetIrqs, type VfioUserClient } from '../../src/vfio-user/index.js';
import { Hostile } from './harness.js';

const started: Hostile[] = [];
after(() => {
  for (const h of started) h.kill();
});

/** SET_IRQS of `count` fresh eventfds on `index` from `start`; the reply's errno. */
async function handOver(c: VfioUserClient, index: number, start: number, count: number): Promise<number> {
  const fds = Array.from({ length: count }, () => eventfd(0, { nonblock: true }));
  try {
    const body = encodeSetIrqs(0, { index, start, count, action: 'trigger', data: 'eventfd' }).subarray(16);
    return (await c.request(Command.DEVICE_SET_IRQS, body, { fds })).errorNo;
  } finally {
    closeFds(fds);
  }
}

describe('hostile: fd exhaustion through SET_IRQS', () => {
  it('irq-fds per client and client-fds for the daemon: ENOSPC past them, the daemon carries on', async () => {
    const h = await Hostile.start({ daemonArgs: ['--limit', 'irq-fds=1', '--limit', 'client-fds=2'] });
    started.push(h);
    const clients: VfioUserClient[] = [];
    await h.underAttack(async () => {
      const a = await h.connectAttacker();
      clients.push(a);
      assert.equal(await handOver(a, PciIrq.REQ, 0, 1), 0, 'the first eventfd is taken');
      assert.equal(await handOver(a, PciIrq.MSI, 0, 1), ERRNO.ENOSPC, "past the client's irq-fds");
      // Replacing the eventfd it holds is no more than it holds: allowed at the limit.
      assert.equal(await handOver(a, PciIrq.REQ, 0, 1), 0, 'a client at its limit may still replace its eventfds');
      const b = await h.connectAttacker();
      clients.push(b);
      assert.equal(await handOver(b, PciIrq.MSI, 0, 1), 0);
      const c = await h.connectAttacker();
      clients.push(c);
      assert.equal(await handOver(c, PciIrq.REQ, 0, 1), ERRNO.ENOSPC, "past the daemon's client-fds");
      // A client that leaves gives its fds back.
      a.close();
      const deadline = Date.now() + 5_000;
      let errno = -1;
      while (errno !== 0 && Date.now() < deadline) errno = await handOver(c, PciIrq.REQ, 0, 1);
      assert.equal(errno, 0, "a departed client's eventfds are the daemon's to give again");
    });
    const refused = h.daemon.logs.filter((l) => l.msg === 'vfio-user client refused: over a limit').map((l) => l.limit);
    assert.deepEqual(refused, ['irq-fds', 'client-fds'], 'each refusal is logged with its limit');
    for (const c of clients) c.close();
    await h.recovered();
    await h.stop();
  });
});
