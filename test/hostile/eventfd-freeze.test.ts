/**
 * Freeze by eventfd: a client hands SET_IRQS an eventfd whose counter it
 * filled to 2^64 - 2 and whose O_NONBLOCK it cleared (it shares the file
 * description), then makes the device raise that interrupt. The server's
 * write must not block: every device and the control socket keep
 * answering, the interrupt is coalesced (the counter is full: the client
 * already has a wakeup pending), and once the client reads its counter
 * interrupts reach it again.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { PciIrq } from '../../src/base/uapi.js';
import { closeFds, eventfd, eventfdRead, eventfdWrite, setNonblocking } from '../../src/native/index.js';
import { Command, encodeSetIrqs, type VfioUserClient } from '../../src/vfio-user/index.js';
import { uvfio } from '../cli/harness.js';
import { until } from '../support/until.js';
import { Hostile, within } from './harness.js';

const FULL = 0xffff_ffff_ffff_fffen;
const TOGGLER = fileURLToPath(new URL('./nonblock-toggler.js', import.meta.url));

const started: Hostile[] = [];
const fds: number[] = [];
after(() => {
  for (const h of started) h.kill();
  closeFds(fds.splice(0));
});

/** A blocking eventfd with its counter at 2^64 - 2: a write of 1 to it blocks. */
function fullBlockingEventfd(): number {
  const fd = eventfd(0, { nonblock: false });
  fds.push(fd);
  eventfdWrite(fd, FULL);
  return fd;
}

/** A daemon, and an attacker that gave a full blocking eventfd as the trigger of `index` vector 0. */
async function attack(index: number): Promise<{ h: Hostile; c: VfioUserClient; fd: number }> {
  const h = await Hostile.start();
  started.push(h);
  const c = await h.connectAttacker();
  const fd = fullBlockingEventfd();
  const body = encodeSetIrqs(0, { index, start: 0, count: 1, action: 'trigger', data: 'eventfd' }).subarray(16);
  const reply = await c.request(Command.DEVICE_SET_IRQS, body, { fds: [fd] });
  assert.equal(reply.errorNo, 0, 'SET_IRQS with the eventfd is accepted');
  return { h, c, fd };
}

/** Waits (bounded) until the counter of `fd` is non-zero, and takes it. */
async function nextCount(fd: number, ms: number): Promise<bigint> {
  setNonblocking(fd, true);
  let n: bigint | null = null;
  await until(() => (n = eventfdRead(fd)) !== null, 'an interrupt', ms);
  return n!;
}

/**
 * After an attack on the MSI trigger `fd`: nothing was added to its full
 * counter; once the client reads it, the next interrupt reaches it (at
 * most one deferral later); then the attacker leaves and the daemon
 * recovers and stops cleanly.
 */
async function deliveredAgain(h: Hostile, c: VfioUserClient, fd: number): Promise<void> {
  assert.equal(eventfdRead(fd), FULL, 'nothing was added to a full counter');
  await c.setIrqs(PciIrq.MSI, 0, 1, 'trigger', 'none');
  assert.equal(await nextCount(fd, 7_000), 1n, 'interrupts reach the client again once it reads');
  c.close();
  await h.recovered();
  await h.stop();
}

describe('hostile: freeze by a full blocking eventfd', () => {
  it('a loopback trigger (SET_IRQS DATA_NONE or DATA_BOOL) into it blocks nothing; the interrupt is coalesced, then delivered again', async () => {
    const { h, c, fd } = await attack(PciIrq.MSI);
    await h.underAttack(async () => {
      for (let i = 0; i < 20; i++) {
        // The DATA_BOOL|TRIGGER, and DATA_NONE, in turn.
        await within(c.setIrqs(PciIrq.MSI, 0, 1, 'trigger', i % 2 === 0 ? [true] : 'none'), 2_000, 'the trigger is answered');
        await sleep(75);
      }
    });
    await h.daemon.waitFor(
      (l) => l.msg === "vfio-user client's interrupt eventfd is full: its interrupts are coalesced" && l.device === h.attacker.uuid,
      2_000,
    );
    await deliveredAgain(h, c, fd);
  });

  it('a second process flipping O_NONBLOCK in a tight loop cannot make a signal block the loop', async () => {
    const { h, c, fd } = await attack(PciIrq.MSI);
    const toggler = spawn(process.execPath, [TOGGLER, '4000'], { stdio: ['ignore', 'pipe', 'inherit', fd] });
    try {
      await within(once(toggler.stdout!, 'data'), 10_000, 'the toggler starts');
      await h.underAttack(async () => {
        // Bursts of pipelined triggers, and single ones, while the flag flips.
        for (let round = 0; round < 12; round++) {
          const burst = Array.from({ length: 50 }, () => c.setIrqs(PciIrq.MSI, 0, 1, 'trigger', 'none'));
          await within(Promise.all(burst), 3_000, 'a burst of triggers is answered');
          await sleep(250);
        }
      });
    } finally {
      toggler.kill('SIGKILL');
    }
    await deliveredAgain(h, c, fd);
  });

  it('uvfio stop signals REQ into it: the control socket and the bystander keep answering', async () => {
    const { h, c } = await attack(PciIrq.REQ);
    let stopped: Promise<{ code: number | null }> | undefined;
    await h.underAttack(async () => {
      stopped = uvfio(h.sb, ['stop', '-u', h.attacker.uuid], 30_000);
      await sleep(2_000);
    });
    // The attacker lets go; stop then finishes.
    c.close();
    const r = await within(stopped!, 15_000, 'uvfio stop');
    assert.equal(r.code, 0);
    await h.recovered();
    await h.stop();
  });
});
