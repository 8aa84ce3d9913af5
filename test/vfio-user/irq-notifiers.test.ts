/**
 * The session's interrupt eventfds: every one adopted is closed exactly
 * once, by a later assignment, a disable, or the client going, including
 * one the device accepted only after the client went.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventfd, openFdCount } from '../../src/native/index.js';
import { IrqNotifiers } from '../../src/vfio-user/irq-notifiers.js';

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
