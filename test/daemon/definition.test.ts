import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { addAttr, attrsToRecord, deleteAttr, parseConfig, parseConfigText, toConfigJson } from '../../src/daemon/definition.js';

describe('definition JSON (mdevctl shape)', () => {
  it('round-trips a configuration', () => {
    const json = { mdev_type: 'mtty-2', start: 'auto' as const, attrs: [{ a: '1' }, { b: '' }, { a: '3' }] };
    assert.deepEqual(toConfigJson(parseConfig(json, 'f.json')), json);
    assert.deepEqual(parseConfig({ mdev_type: 'x', start: 'manual' }, 'f').attrs, [], 'attrs are optional');
  });

  const bad: Array<[unknown, RegExp]> = [
    [[], /f\.json: expected a JSON object/],
    [{ mdev_type: 'x', start: 'manual', atrs: [] }, /field "atrs" is unknown/],
    [{ start: 'manual' }, /field "mdev_type" must be a non-empty string, not missing/],
    [{ mdev_type: 'x', start: 'sometimes' }, /field "start" must be "auto" or "manual", not "sometimes"/],
    [{ mdev_type: 'x', start: 'auto', attrs: {} }, /field "attrs" must be an array/],
    [{ mdev_type: 'x', start: 'auto', attrs: ['a=1'] }, /field "attrs\[0\]" must be an object/],
    [{ mdev_type: 'x', start: 'auto', attrs: [{ a: '1', b: '2' }] }, /field "attrs\[0\]" must have exactly one member/],
    [{ mdev_type: 'x', start: 'auto', attrs: [{ a: '1' }, { b: 2 }] }, /field "attrs\[1\]": the value of "b" must be a string, not 2/],
  ];
  for (const [value, re] of bad) {
    it(`names the field: ${re.source}`, () => {
      assert.throws(
        () => parseConfig(value, 'f.json'),
        (e: NodeJS.ErrnoException) => e.code === 'EINVAL' && re.test(e.message),
      );
    });
  }

  it('names the file for invalid JSON', () => {
    assert.throws(() => parseConfigText('{"mdev_type": ', '/x/dev.json'), { code: 'EINVAL', message: /^\/x\/dev\.json: invalid JSON: / });
  });

  it('adds and deletes attributes by index as mdevctl does', () => {
    const a = (name: string) => ({ name, value: name });
    let list = addAttr([], a('x'), undefined);
    list = addAttr(list, a('y'), undefined);
    list = addAttr(list, a('w'), 0);
    list = addAttr(list, a('z'), 3);
    assert.deepEqual(
      list.map((x) => x.name),
      ['w', 'x', 'y', 'z'],
    );
    assert.throws(() => addAttr(list, a('q'), 5), { code: 'EINVAL', message: /index 5 is out of range \(0 to 4\)/ });
    assert.deepEqual(
      deleteAttr(list, 1).map((x) => x.name),
      ['w', 'y', 'z'],
    );
    assert.deepEqual(
      deleteAttr(list, undefined).map((x) => x.name),
      ['w', 'x', 'y'],
    );
    assert.throws(() => deleteAttr(list, 4), { code: 'EINVAL', message: /0 to 3/ });
    assert.throws(() => deleteAttr([], undefined), { code: 'EINVAL' });
  });

  it('refuses a repeated attribute name when handing attributes to the bus', () => {
    assert.deepEqual(attrsToRecord([{ name: 'a', value: '1' }], 'u'), { a: '1' });
    assert.throws(
      () =>
        attrsToRecord(
          [
            { name: 'a', value: '1' },
            { name: 'a', value: '2' },
          ],
          'u',
        ),
      { code: 'EINVAL', message: /"a" is given twice/ },
    );
  });
});
