import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { VfioError } from '../../src/base/errors.js';
import { errorLine } from '../../src/cli/error-line.js';

describe('the error line of a failed command', () => {
  it('a VfioError is its sentence', () => {
    assert.equal(errorLine(new VfioError('ENODEV', 'x is not running')), 'uvfio: x is not running\n');
  });

  it('a bug is one line naming the error and where it was thrown', () => {
    const err = new TypeError('cannot read properties of undefined\n(reading "uuid")');
    err.stack = `TypeError: ${err.message}\n    at run (file:///x/list.js:3:7)\n    at main (file:///x/main.js:9:1)`;
    assert.equal(
      errorLine(err),
      'uvfio: internal error: TypeError: cannot read properties of undefined (reading "uuid") (at run (file:///x/list.js:3:7))\n',
    );
  });

  it('a thrown non-error is one line too', () => {
    assert.equal(errorLine('a\nb'), 'uvfio: internal error: a b\n');
  });
});
