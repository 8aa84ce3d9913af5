/** An EventNotifier for tests: counts signals and fails a test that signals it after close. */
import assert from 'node:assert/strict';
import type { EventNotifier } from '../../src/base/uapi.js';

export class FakeNotifier implements EventNotifier {
  count = 0;
  closed = false;
  signal(): void {
    assert.equal(this.closed, false, 'signalled after close');
    this.count++;
  }
  close(): void {
    this.closed = true;
  }
}
