import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VfioError } from '../../src/base/errors.js';
import { Bars, barOffset, type BarDescriptor } from '../../src/pci/bar.js';
import { ConfigSpace, PCI_COMMAND, PCI_HEADER } from '../../src/pci/config-space.js';

const EINVAL = (e: unknown) => e instanceof VfioError && e.code === 'EINVAL';

function space(): ConfigSpace {
  return ConfigSpace.type0({ vendorId: 0x1234, deviceId: 0x5678, classCode: 0xff0000, interruptPin: 1 });
}

/** What an OS does to size a BAR: save, write all-ones, read, restore. */
function probe(cs: ConfigSpace, off: number): number {
  const saved = cs.read(off, 4);
  cs.write(off, 4, 0xffffffff);
  const mask = cs.read(off, 4);
  cs.write(off, 4, saved);
  return mask;
}

test('32-bit memory BAR: size mask, type bits, prefetchable', () => {
  const cs = space();
  new Bars(cs, [
    { kind: 'mem32', size: 4096 },
    { kind: 'mem32', size: 1 << 20, prefetchable: true },
  ]);
  assert.equal(cs.read(barOffset(0), 4), 0);
  assert.equal(probe(cs, barOffset(0)), 0xfffff000);
  assert.equal(probe(cs, barOffset(1)), 0xfff00008);
  assert.equal(cs.read(barOffset(1), 4), 0x8, 'restored, type bits stay');
  // Smallest BAR: 16 bytes, every address bit above bit 3 writable.
  const small = space();
  new Bars(small, [{ kind: 'mem32', size: 16 }]);
  assert.equal(probe(small, barOffset(0)), 0xfffffff0);
});

test('I/O BAR: bit 0 set, size mask in bits 31:2', () => {
  const cs = space();
  new Bars(cs, [
    { kind: 'io', size: 8 },
    { kind: 'io', size: 256 },
  ]);
  assert.equal(cs.read(barOffset(0), 4), 0x1);
  assert.equal(probe(cs, barOffset(0)), 0xfffffff9);
  assert.equal(probe(cs, barOffset(1)), 0xffffff01);
});

test('64-bit BAR spans two dwords; sizing each half as an OS does', () => {
  const cs = space();
  const bars = new Bars(cs, [
    undefined,
    undefined,
    { kind: 'mem64', size: 1 << 20, prefetchable: true },
    undefined,
    { kind: 'mem64', size: 2 ** 33 },
  ]);
  assert.equal(cs.read(barOffset(2), 4), 0xc);
  assert.equal(probe(cs, barOffset(2)), 0xfff0000c);
  assert.equal(probe(cs, barOffset(3)), 0xffffffff);
  // 8 GiB: the whole low dword is inside the size; the high dword loses bit 0.
  assert.equal(probe(cs, barOffset(4)), 0x00000004);
  assert.equal(probe(cs, barOffset(5)), 0xfffffffe);
  assert.equal(bars.get(3), undefined, 'upper half has no descriptor');
  cs.write(barOffset(2), 4, 0xfeb00000);
  cs.write(barOffset(3), 4, 0x00000001);
  assert.equal(bars.baseAddress(2), 0x1feb00000n);
  cs.write(barOffset(4), 4, 0x12345678);
  cs.write(barOffset(5), 4, 0x00000003);
  assert.equal(bars.baseAddress(4), 0x200000000n, 'bits below the 8 GiB size are not stored');
});

test('unimplemented BARs read 0 and stay 0', () => {
  const cs = space();
  new Bars(cs, [{ kind: 'io', size: 8 }]);
  for (let i = 1; i < 6; i++) {
    assert.equal(probe(cs, barOffset(i)), 0);
    assert.equal(cs.read(barOffset(i), 4), 0);
  }
  assert.equal(probe(cs, PCI_HEADER.CARDBUS_CIS), 0);
  assert.equal(probe(cs, PCI_HEADER.ROM_ADDRESS), 0, 'no ROM');
});

test('base addresses and decode follow the command register', () => {
  const cs = space();
  const bars = new Bars(cs, [
    { kind: 'io', size: 8 },
    { kind: 'mem32', size: 4096 },
  ]);
  cs.write(barOffset(0), 4, 0xc000);
  cs.write(barOffset(1), 4, 0xfebf1000);
  assert.equal(bars.baseAddress(0), 0xc000n);
  assert.equal(bars.baseAddress(1), 0xfebf1000n);
  assert.equal(bars.decodes(0), false);
  cs.write(PCI_HEADER.COMMAND, 2, PCI_COMMAND.IO);
  assert.equal(bars.decodes(0), true);
  assert.equal(bars.decodes(1), false);
  cs.write(PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(cs.read(PCI_HEADER.COMMAND, 2), PCI_COMMAND.IO | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER | PCI_COMMAND.INTX_DISABLE);
  assert.equal(bars.decodes(1), true);
  assert.equal(bars.size(1), 4096);
  assert.equal(bars.size(2), 0);
});

test('command decode bits exist only for the spaces the function has', () => {
  const io = space();
  new Bars(io, [{ kind: 'io', size: 8 }]);
  io.write(PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(io.read(PCI_HEADER.COMMAND, 2) & (PCI_COMMAND.IO | PCI_COMMAND.MEMORY), PCI_COMMAND.IO);
  const rom = space();
  new Bars(rom, [], { size: 2048 });
  rom.write(PCI_HEADER.COMMAND, 2, 0xffff);
  assert.equal(rom.read(PCI_HEADER.COMMAND, 2) & (PCI_COMMAND.IO | PCI_COMMAND.MEMORY), PCI_COMMAND.MEMORY);
});

test('expansion ROM: size probing with and without the enable bit', () => {
  const cs = space();
  const bars = new Bars(cs, [{ kind: 'mem32', size: 4096 }], { size: 64 * 1024 });
  cs.write(PCI_HEADER.ROM_ADDRESS, 4, 0xfffff800);
  assert.equal(cs.read(PCI_HEADER.ROM_ADDRESS, 4), 0xffff0000, 'Linux probes with the enable bit clear');
  cs.write(PCI_HEADER.ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(cs.read(PCI_HEADER.ROM_ADDRESS, 4), 0xffff0001);
  cs.write(PCI_HEADER.ROM_ADDRESS, 4, 0xfeb80001);
  assert.deepEqual(bars.romState(), { address: 0xfeb80000, enabled: false }, 'memory decode still off');
  cs.write(PCI_HEADER.COMMAND, 2, PCI_COMMAND.MEMORY);
  assert.deepEqual(bars.romState(), { address: 0xfeb80000, enabled: true });
  cs.write(PCI_HEADER.ROM_ADDRESS, 4, 0xfeb80000);
  assert.equal(bars.romState().enabled, false);
});

test('invalid BAR layouts are EINVAL', () => {
  const bad: Array<[Array<BarDescriptor | undefined>, object?]> = [
    [[{ kind: 'mem32', size: 3000 }]],
    [[{ kind: 'mem32', size: 8 }]],
    [[{ kind: 'io', size: 512 }]],
    [[{ kind: 'io', size: 2 }]],
    [[{ kind: 'io', size: 8, prefetchable: true }]],
    [[undefined, undefined, undefined, undefined, undefined, { kind: 'mem64', size: 4096 }]],
    [
      [
        { kind: 'mem64', size: 4096 },
        { kind: 'io', size: 8 },
      ],
    ],
    [[{ kind: 'mem32', size: 2 ** 32 }]],
    [new Array(7).fill(undefined)],
    [[], { size: 1024 }],
    [[], { size: 3 * 2048 }],
  ];
  for (const [bars, rom] of bad) {
    assert.throws(() => new Bars(space(), bars, rom as { size: number } | undefined), EINVAL, JSON.stringify([bars, rom]));
  }
  const ok = new Bars(space(), [{ kind: 'mem64', size: 2 ** 40 }]);
  assert.equal(ok.size(0), 2 ** 40);
  assert.throws(() => ok.get(6), EINVAL);
  assert.throws(() => barOffset(-1), EINVAL);
});
