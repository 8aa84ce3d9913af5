/**
 * The session's interrupt eventfds: every one adopted is closed exactly
 * once, by a later assignment, a disable, or the client going, including
 * one the device accepted only after the client went; each counts against
 * the client's budget while held; a client whose eventfd blocks a write
 * has its interrupts deferred, then delivered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Budget, OverBudget } from '../../src/base/budget.js';
import { close, dup, eventfd, eventfdRead, eventfdWrite, openFdCount, setNonblocking } from '../../src/native/index.js';
import { DEFER_MIN_MS } from '../../src/vfio-user/eventfd-notifier.js';
import { IrqNotifiers } from '../../src/vfio-user/irq-notifiers.js';
import { until } from '../support/until.js';

describe('IrqNotifiers', () => {
  it('closes what a later assignment replaces, and the rest on closeAll', () => {
    const before = openFdCount();
    const notifiers = new IrqNotifiers();
    const [a, b] = notifiers.adopt([eventfd(), eventfd()]);
    notifiers.assigned(0, 'trigger', 0, [a!, b!]);
    const [c] = notifiers.adopt([eventfd()]);
    notifiers.assigned(0, 'trigger', 0, [c!]);
    assert.equal(a!.closed, true);
    assert.equal(b!.closed, false);
    assert.equal(notifiers.size, 2);
    notifiers.closeAll();
    assert.equal(b!.closed, true);
    assert.equal(c!.closed, true);
    assert.equal(notifiers.size, 0);
    assert.equal(openFdCount(), before);
  });

  it('closes notifiers assigned after closeAll (a SET_IRQS that finished after the client went)', () => {
    const before = openFdCount();
    const notifiers = new IrqNotifiers();
    const late = notifiers.adopt([eventfd(), eventfd()]);
    notifiers.closeAll();
    notifiers.assigned(2, 'trigger', 0, [late[0]!, null, late[1]!]);
    assert.equal(late[0]!.closed, true);
    assert.equal(late[1]!.closed, true);
    assert.equal(notifiers.size, 0);
    assert.equal(openFdCount(), before);
  });
});

describe('IrqNotifiers: budget and gate', () => {
  it('counts every fd held against its budget; past it ENOSPC and every fd passed is closed', () => {
    const before = openFdCount();
    const daemon = new Budget('client-fds', 3);
    const notifiers = new IrqNotifiers({ budget: new Budget('irq-fds', 2, daemon) });
    const [a, b] = notifiers.adopt([eventfd(), eventfd()]);
    assert.throws(
      () => notifiers.adopt([eventfd()]),
      (e: unknown) => e instanceof OverBudget && e.code === 'ENOSPC' && e.limit === 'irq-fds',
    );
    assert.equal(openFdCount(), before + 2, 'the refused fd was closed');
    notifiers.assigned(2, 'trigger', 0, [a!, b!]);
    notifiers.assigned(2, 'trigger', 1, [null]);
    assert.equal(daemon.used, 1, 'a replaced notifier gave its fd back');
    const [c] = notifiers.adopt([eventfd()]);
    notifiers.assigned(2, 'trigger', 1, [c!]);
    notifiers.closeAll();
    assert.equal(daemon.used, 0);
    assert.equal(openFdCount(), before);
  });

  it('a client at its limit may replace the eventfds it holds (QEMU re-sends MSI-X ones)', () => {
    const before = openFdCount();
    const budget = new Budget('irq-fds', 2);
    const notifiers = new IrqNotifiers({ budget });
    const held = notifiers.adopt([eventfd(), eventfd()], { index: 2, action: 'trigger', start: 0 });
    notifiers.assigned(2, 'trigger', 0, held);
    assert.throws(() => notifiers.adopt([eventfd()], { index: 2, action: 'trigger', start: 2 }), OverBudget);
    const again = notifiers.adopt([eventfd()], { index: 2, action: 'trigger', start: 1 });
    notifiers.assigned(2, 'trigger', 1, again);
    assert.equal(budget.used, 2, 'the replaced one was given back');
    notifiers.closeAll();
    assert.equal(budget.used, 0);
    assert.equal(openFdCount(), before);
  });

  it('adopted eventfds are made nonblocking: a full one costs nothing and is coalesced', () => {
    const notifiers = new IrqNotifiers();
    const fd = eventfd(0, { nonblock: false });
    const watch = dup(fd);
    eventfdWrite(watch, FULL);
    const [n] = notifiers.adopt([fd]);
    n!.signal();
    assert.equal(n!.coalesced, 1);
    assert.equal(notifiers.gate.deferring, false, 'a nonblocking full counter does not defer the client');
    notifiers.closeAll();
    close(watch);
  });

  it("once a write had to be cut short, the client's interrupts are deferred and then delivered once each", async () => {
    const notifiers = new IrqNotifiers();
    const hostileFd = eventfd(0, { nonblock: false });
    const quietFd = eventfd(0, { nonblock: true });
    const [hostile, quiet] = notifiers.adopt([dup(hostileFd), dup(quietFd)]);
    // The client clears O_NONBLOCK after handing the fd over, and fills the counter.
    setNonblocking(hostileFd, false);
    eventfdWrite(hostileFd, FULL);
    hostile!.signal();
    assert.equal(hostile!.coalesced, 1);
    assert.equal(notifiers.gate.deferring, true);
    quiet!.signal();
    quiet!.signal();
    assert.equal(eventfdRead(quietFd), null, 'deferred, not delivered yet');
    assert.equal(quiet!.coalesced, 2);
    let got: bigint | null = null;
    await until(() => (got = eventfdRead(quietFd)) !== null, 'the deferred interrupt', DEFER_MIN_MS * 20);
    assert.equal(got, 1n, 'delivered once when the while ended');
    assert.equal(eventfdRead(hostileFd), FULL);
    assert.equal(notifiers.gate.deferring, false);
    quiet!.signal();
    assert.equal(eventfdRead(quietFd), 1n, 'delivered at once again');
    notifiers.closeAll();
    close(hostileFd);
    close(quietFd);
  });

  it('a write cut short is signalled again when the while ends: it may never have reached the counter', async () => {
    const notifiers = new IrqNotifiers();
    const fd = eventfd(0, { nonblock: false });
    const [n] = notifiers.adopt([dup(fd)]);
    setNonblocking(fd, false);
    eventfdWrite(fd, FULL);
    n!.signal();
    assert.equal(notifiers.gate.deferring, true, 'cut short');
    assert.equal(eventfdRead(fd), FULL, 'nothing was added');
    let got: bigint | null = null;
    await until(() => (got = eventfdRead(fd)) !== null, 'the interrupt signalled again', DEFER_MIN_MS * 20);
    assert.equal(got, 1n);
    notifiers.closeAll();
    close(fd);
  });
});

const FULL = 2n ** 64n - 2n;
