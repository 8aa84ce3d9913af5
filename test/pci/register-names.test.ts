/**
 * What `uvfio trace` calls the registers an access touches: config space
 * fields (header and capabilities), the MSI-X table, and the names drivers
 * give their BARs (mtty's UART registers as DLAB selects them, mbochs's
 * dispi registers, virtio's common configuration).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PciRegion, VfioCore } from '../../src/core/index.js';
import { MbochsDevice } from '../../src/drivers/mbochs/index.js';
import { createMttyDevice } from '../../src/drivers/mtty/mtty-device.js';
import { FileBackend, VirtioBlkDevice } from '../../src/drivers/virtio-blk/index.js';
import { nameAccess } from '../../src/pci/index.js';

const CONFIG = PciRegion.CONFIG;

describe('register names', () => {
  it('config space: header fields, BARs and partial accesses', () => {
    const card = createMttyDevice({ name: 'names-mtty', core: new VfioCore(), ports: 2 });
    const name = (offset: number, size: number) => card.describeAccess(CONFIG, offset, size, false);
    assert.equal(name(0x04, 2), 'COMMAND');
    assert.equal(name(0x04, 4), 'COMMAND,STATUS');
    assert.equal(name(0x05, 1), 'COMMAND+1');
    assert.equal(name(0x00, 4), 'VENDOR_ID,DEVICE_ID');
    assert.equal(name(0x10, 4), 'BAR0');
    assert.equal(name(0x14, 4), 'BAR1');
    assert.equal(name(0x3c, 2), 'INTERRUPT_LINE,INTERRUPT_PIN');
    assert.equal(name(0x36, 2), undefined, 'the reserved bytes after the capability pointer have no name');
  });

  it('config space: the MSI capability where the list puts it', () => {
    const card = createMttyDevice({ name: 'names-msi', core: new VfioCore(), ports: 1 });
    const at = card.msi!.offset;
    const name = (offset: number, size: number) => card.describeAccess(CONFIG, offset, size, true);
    assert.equal(name(at, 4), 'MSI ID,MSI NEXT,MSI FLAGS');
    assert.equal(name(at + 2, 2), 'MSI FLAGS');
    assert.equal(name(at + 4, 4), 'MSI ADDRESS_LO');
    assert.equal(name(at + 8, 4), 'MSI ADDRESS_HI');
    assert.equal(name(at + 12, 2), 'MSI DATA');
    assert.equal(name(at + 16, 4), 'MSI MASK');
    assert.equal(name(at + 20, 4), 'MSI PENDING');
  });

  it('regions and irq indexes have their VFIO PCI names', () => {
    const card = createMttyDevice({ name: 'names-regions', core: new VfioCore(), ports: 1 });
    assert.deepEqual(
      [0, 6, 7, 8].map((i) => card.regionName(i)),
      ['BAR0', 'ROM', 'config', 'VGA'],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((i) => card.irqName(i)),
      ['INTX', 'MSI', 'MSIX', 'ERR', 'REQ'],
    );
  });

  it('mtty: each port names its UART registers, by direction and by DLAB', () => {
    const card = createMttyDevice({ name: 'names-uart', core: new VfioCore(), ports: 2 });
    const name = (bar: number, offset: number, write: boolean, size = 1) => card.describeAccess(bar, offset, size, write);
    assert.equal(name(0, 3, true), 'port0 LCR');
    assert.equal(name(1, 7, true), 'port1 SCR');
    assert.equal(name(0, 0, true), 'port0 THR');
    assert.equal(name(0, 0, false), 'port0 RBR');
    assert.equal(name(0, 1, true), 'port0 IER');
    assert.equal(name(0, 2, true), 'port0 FCR');
    assert.equal(name(0, 2, false), 'port0 IIR');
    card.regionWrite(0, 3, Uint8Array.of(0x80)); // DLAB on port 0 only
    assert.equal(name(0, 0, true), 'port0 DLL');
    assert.equal(name(0, 1, true), 'port0 DLM');
    assert.equal(name(1, 1, true), 'port1 IER');
    assert.equal(name(0, 3, true, 2), 'port0 LCR,MCR');
    assert.equal(name(0, 8, true), undefined);
  });

  it('mbochs: the dispi registers and the EDID window of BAR2', () => {
    const dev = new MbochsDevice({ name: 'names-mbochs', core: new VfioCore(), memoryBytes: 4 * 1024 * 1024, maxWidth: 0, maxHeight: 0 });
    try {
      assert.equal(dev.describeAccess(2, 0x502, 2, true), 'dispi XRES');
      assert.equal(dev.describeAccess(2, 0x500, 2, false), 'dispi ID');
      assert.equal(dev.describeAccess(2, 0x508, 2, true), 'dispi ENABLE');
      assert.equal(dev.describeAccess(2, 0x10, 4, false), 'EDID+0x10');
      assert.equal(dev.describeAccess(0, 0x1000, 4, true), undefined, 'video memory has no registers');
    } finally {
      dev.release();
    }
  });

  it('virtio: common configuration fields, ISR, device configuration and notifications in BAR0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uvfio-names-'));
    const image = join(dir, 'disk.img');
    writeFileSync(image, new Uint8Array(4096));
    const backend = await FileBackend.open(image, true);
    const dev = new VirtioBlkDevice({ name: 'names-vblk', core: new VfioCore(), backend });
    try {
      const name = (offset: number, size: number) => dev.describeAccess(0, offset, size, true);
      assert.equal(name(0x0000, 4), 'common DEVICE_FEATURE_SELECT');
      assert.equal(name(0x0014, 1), 'common DEVICE_STATUS');
      assert.equal(name(0x0016, 2), 'common QUEUE_SELECT');
      assert.equal(name(0x0020, 4), 'common QUEUE_DESC');
      assert.equal(name(0x0024, 4), 'common QUEUE_DESC+4');
      assert.equal(name(0x1000, 1), 'ISR');
      assert.equal(name(0x2014, 4), 'device+0x14');
      assert.equal(name(0x3004, 2), 'notify queue 1');
    } finally {
      dev.release();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nameAccess: fields in order, joined; none touched is undefined', () => {
    const fields = [
      { offset: 0, size: 2, name: 'A' },
      { offset: 2, size: 2, name: 'B' },
      { offset: 8, size: 4, name: 'C' },
    ];
    assert.equal(nameAccess(fields, 0, 4), 'A,B');
    assert.equal(nameAccess(fields, 1, 2), 'A+1,B');
    assert.equal(nameAccess(fields, 4, 4), undefined);
    assert.equal(nameAccess(fields, 10, 1), 'C+2');
    const many = Array.from({ length: 6 }, (_, i) => ({ offset: i, size: 1, name: `R${i}` }));
    assert.equal(nameAccess(many, 0, 4), 'R0,R1,R2,R3');
    assert.equal(nameAccess(many, 0, 6), 'R0..R5', 'a dump names its ends');
  });
});
