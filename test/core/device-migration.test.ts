/**
 * The core's migration v2 machinery through the device file: which driver
 * hooks each arc calls, the data session, failures (ERROR, a refused
 * stream), reset and close back to RUNNING, limits, and serialisation with
 * reset and close under the set lock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrationFlags, MigState, VfioCore, VfioError, type DeviceFile } from '../../src/core/index.js';
import { IommufdContext } from '../../src/iommufd/index.js';
import { MigDevice } from '../support/mig-device.js';
import { TestDevice } from '../support/test-device.js';

const { STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P, ERROR } = MigState;

function isCode(code: string) {
  return (e: unknown) => e instanceof VfioError && e.code === code;
}

async function setup(options: { flags?: number; maxStreamBytes?: number; point?: (l: string) => Promise<void> } = {}) {
  const core = new VfioCore({ requestBackoffMs: () => 1 });
  const dev = new MigDevice({ name: 'm', core, ...options });
  dev.register();
  const file = dev.openFile();
  await file.bindIommufd(new IommufdContext());
  return { core, dev, file };
}

async function readAll(file: DeviceFile): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 100; i++) {
    const chunk = await file.migrationDataRead(3);
    out.push(...chunk);
    if (chunk.length < 3) return out;
  }
  throw new Error('the stream never ended');
}

describe('device migration: arcs and driver hooks', () => {
  it('a new device is RUNNING and reports its flags', async () => {
    const { dev, file } = await setup();
    assert.equal(await file.migrationState(), RUNNING);
    assert.equal(await file.migrationFlags(), MigrationFlags.STOP_COPY | MigrationFlags.P2P | MigrationFlags.PRE_COPY);
    assert.deepEqual(dev.hooks, []);
  });

  it('STOP_COPY without precopy: stop, then save everything; STOP ends the session; RUNNING starts', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(STOP_COPY);
    assert.deepEqual(dev.hooks, ['stop', 'save:stop-copy:false']);
    assert.deepEqual(await readAll(file), [0xaa, 1, 2, 3, 4]);
    await file.setMigrationState(STOP);
    await assert.rejects(async () => file.migrationDataRead(8), isCode('EINVAL'));
    await file.setMigrationState(RUNNING);
    assert.deepEqual(dev.hooks, ['stop', 'save:stop-copy:false', 'start']);
    assert.equal(await file.migrationState(), RUNNING);
    assert.deepEqual(dev.violations, []);
  });

  it('PRE_COPY: the precopy stage while running, precopy info, then the rest after stopping in one stream', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(PRE_COPY);
    assert.deepEqual(dev.hooks, ['save:precopy:false']);
    assert.deepEqual(await file.migrationPrecopyInfo(), { initialBytes: 1, dirtyBytes: 0 });
    assert.deepEqual([...(await file.migrationDataRead(8))], [0xaa]);
    assert.deepEqual(await file.migrationPrecopyInfo(), { initialBytes: 0, dirtyBytes: 0 });
    assert.equal((await file.migrationDataRead(8)).length, 0, 'nothing more for now');
    await file.setMigrationState(PRE_COPY_P2P);
    await file.setMigrationState(STOP_COPY);
    assert.deepEqual(dev.hooks, ['save:precopy:false', 'stop', 'save:stop-copy:true']);
    await assert.rejects(async () => file.migrationPrecopyInfo(), isCode('EINVAL'));
    assert.deepEqual(await readAll(file), [1, 2, 3, 4]);
    await file.setMigrationState(RUNNING);
    assert.deepEqual(dev.hooks.slice(3), ['start']);
    assert.deepEqual(dev.violations, []);
  });

  it('PRE_COPY → RUNNING drops the session; P2P arcs call nothing', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(RUNNING_P2P);
    await file.setMigrationState(PRE_COPY_P2P);
    await file.setMigrationState(PRE_COPY);
    await file.setMigrationState(RUNNING);
    await assert.rejects(async () => file.migrationDataRead(1), isCode('EINVAL'));
    assert.deepEqual(dev.hooks, ['save:precopy:false']);
  });

  it('RESUMING: writes gather, leaving RESUMING loads the whole stream once, RUNNING starts', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(RESUMING);
    assert.deepEqual(dev.hooks, ['stop']);
    await file.migrationDataWrite(Uint8Array.of(0xaa, 9));
    await file.migrationDataWrite(Uint8Array.of(8, 7));
    await file.setMigrationState(RUNNING);
    assert.deepEqual(dev.hooks, ['stop', 'load:4', 'start']);
    assert.deepEqual([...dev.saved], [9, 8, 7]);
    assert.deepEqual(dev.violations, []);
  });

  it('a refused stream fails the SET with its errno, changes nothing, and a good stream can follow', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(RESUMING);
    await file.migrationDataWrite(Uint8Array.of(0x55, 1));
    await assert.rejects(file.setMigrationState(RUNNING), isCode('EBADMSG'));
    assert.equal(await file.migrationState(), RESUMING);
    assert.deepEqual([...dev.saved], [1, 2, 3, 4]);
    await file.migrationDataWrite(Uint8Array.of(0xaa, 6));
    await file.setMigrationState(RUNNING);
    assert.deepEqual(dev.hooks, ['stop', 'load:2', 'load:2', 'start']);
    assert.deepEqual([...dev.saved], [6]);
  });

  it('a driver failure puts the device in ERROR; only a reset leaves it, running again', async () => {
    const { dev, file } = await setup();
    dev.fail = { hook: 'save', error: new Error('boom') };
    await assert.rejects(file.setMigrationState(STOP_COPY), /boom/);
    assert.equal(await file.migrationState(), ERROR);
    await assert.rejects(file.setMigrationState(RUNNING), isCode('EINVAL'));
    await assert.rejects(file.setMigrationState(STOP), isCode('EINVAL'));
    await assert.rejects(async () => file.migrationDataRead(1), isCode('EINVAL'));
    await file.reset();
    assert.equal(await file.migrationState(), RUNNING);
    assert.equal(dev.running, true, 'the stopped device was started again');
    assert.deepEqual(dev.violations, []);
  });

  it('a load that throws something other than a VfioError is a driver failure: ERROR', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(RESUMING);
    await file.migrationDataWrite(Uint8Array.of(0xaa));
    dev.fail = { hook: 'load', error: new TypeError('bug') };
    await assert.rejects(file.setMigrationState(STOP), /bug/);
    assert.equal(await file.migrationState(), ERROR);
  });

  it('a multi-step transition that fails half-way keeps the steps taken', async () => {
    const { dev, file } = await setup();
    dev.fail = { hook: 'start', error: new VfioError('EIO', 'cannot start') };
    await file.setMigrationState(STOP);
    await assert.rejects(file.setMigrationState(PRE_COPY), isCode('EIO'));
    // STOP → RUNNING_P2P (start failed) is a driver failure: ERROR.
    assert.equal(await file.migrationState(), ERROR);
  });

  it('refused arcs change nothing and call no hook', async () => {
    const { dev, file } = await setup();
    await file.setMigrationState(STOP_COPY);
    const before = dev.hooks.length;
    await assert.rejects(file.setMigrationState(PRE_COPY), isCode('EINVAL'));
    await assert.rejects(file.setMigrationState(ERROR), isCode('EINVAL'));
    await assert.rejects(file.setMigrationState(8), isCode('EINVAL'));
    assert.equal(await file.migrationState(), STOP_COPY);
    assert.equal(dev.hooks.length, before);
  });

  it('a device without P2P walks RUNNING → STOP directly; one without PRE_COPY refuses PRE_COPY', async () => {
    const { dev, file } = await setup({ flags: MigrationFlags.STOP_COPY });
    await assert.rejects(file.setMigrationState(RUNNING_P2P), isCode('EINVAL'));
    await assert.rejects(file.setMigrationState(PRE_COPY), isCode('EINVAL'));
    await file.setMigrationState(STOP);
    assert.deepEqual(dev.hooks, ['stop']);
  });
});

/** A device whose STOP_COPY state comes as pieces made when read (as video memory does). */
class LazyDevice extends MigDevice {
  made = 0;
  failAt = -1;
  override migrationSave(stage: 'precopy' | 'stop-copy'): Uint8Array | Iterable<Uint8Array> {
    if (stage === 'precopy') return Uint8Array.of(0xaa);
    const self = this;
    return (function* () {
      for (let i = 0; i < 4; i++) {
        if (i === self.failAt) throw new Error('piece failed');
        self.made++;
        yield Uint8Array.of(i, i, i);
      }
    })();
  }
}

describe('device migration: lazy saves', () => {
  it('pieces are made as reads need them, not when STOP_COPY begins; reads cross pieces', async () => {
    const core = new VfioCore();
    const dev = new LazyDevice({ name: 'lazy', core });
    dev.register();
    const file = dev.openFile();
    await file.bindIommufd(new IommufdContext());
    await file.setMigrationState(STOP_COPY);
    assert.equal(dev.made, 0, 'nothing copied by the SET');
    assert.deepEqual([...(await file.migrationDataRead(2))], [0, 0]);
    assert.equal(dev.made, 1);
    assert.deepEqual([...(await file.migrationDataRead(4))], [0, 1, 1, 1]);
    assert.deepEqual([...(await file.migrationDataRead(100))], [2, 2, 2, 3, 3, 3]);
    assert.equal((await file.migrationDataRead(100)).length, 0);
    assert.equal(dev.made, 4);
  });

  it('a piece that fails is a failed save: ERROR', async () => {
    const core = new VfioCore();
    const dev = new LazyDevice({ name: 'lazy-fail', core });
    dev.failAt = 1;
    dev.register();
    const file = dev.openFile();
    await file.bindIommufd(new IommufdContext());
    await file.setMigrationState(STOP_COPY);
    await assert.rejects(async () => file.migrationDataRead(100), /piece failed/);
    assert.equal(await file.migrationState(), ERROR);
  });
});

describe('device migration: data session limits and states', () => {
  it('reads only in the saving group, writes only while RESUMING, at most maxStreamBytes', async () => {
    const { file } = await setup({ maxStreamBytes: 10 });
    await assert.rejects(async () => file.migrationDataRead(1), isCode('EINVAL'));
    await assert.rejects(async () => file.migrationDataWrite(Uint8Array.of(1)), isCode('EINVAL'));
    await file.setMigrationState(RESUMING);
    await file.migrationDataWrite(new Uint8Array(6));
    await assert.rejects(async () => file.migrationDataWrite(new Uint8Array(5)), isCode('ENOSPC'));
    await file.migrationDataWrite(new Uint8Array(4));
    await assert.rejects(async () => file.migrationDataRead(1), isCode('EINVAL'));
    await assert.rejects(async () => file.migrationPrecopyInfo(), isCode('EINVAL'));
  });

  it('a device that cannot migrate: ENOTTY for the feature, EINVAL for data', async () => {
    const core = new VfioCore();
    const dev = new TestDevice({ name: 'plain', core });
    dev.register();
    const file = dev.openFile();
    await file.bindIommufd(new IommufdContext());
    await assert.rejects(async () => file.migrationFlags(), isCode('ENOTTY'));
    await assert.rejects(async () => file.migrationState(), isCode('ENOTTY'));
    await assert.rejects(file.setMigrationState(STOP), isCode('ENOTTY'));
    await assert.rejects(async () => file.migrationDataRead(1), isCode('EINVAL'));
    await assert.rejects(async () => file.migrationDataWrite(Uint8Array.of(1)), isCode('EINVAL'));
  });

  it('the last close returns a stopped device to RUNNING, running; another file keeps the state', async () => {
    const { dev, file } = await setup();
    const second = dev.openFile();
    await second.bindIommufd(new IommufdContext());
    await file.setMigrationState(STOP_COPY);
    await second.close();
    assert.equal(await file.migrationState(), STOP_COPY, 'not the last close');
    await file.close();
    assert.equal(dev.running, true);
    const again = dev.openFile();
    await again.bindIommufd(new IommufdContext());
    assert.equal(await again.migrationState(), RUNNING);
    await assert.rejects(async () => again.migrationDataRead(1), isCode('EINVAL'));
    assert.deepEqual(dev.violations, []);
  });

  it('a hot reset returns every device of the set to RUNNING', async () => {
    const core = new VfioCore();
    const a = new MigDevice({ name: 'a', core });
    const b = new MigDevice({ name: 'b', core });
    a.register({ setKey: 's' });
    b.register({ setKey: 's' });
    const ctx = new IommufdContext();
    const fa = a.openFile();
    const fb = b.openFile();
    await fa.bindIommufd(ctx);
    await fb.bindIommufd(ctx);
    await fa.setMigrationState(STOP);
    await fb.setMigrationState(RESUMING);
    await fa.pciHotReset();
    assert.equal(await fa.migrationState(), RUNNING);
    assert.equal(await fb.migrationState(), RUNNING);
    assert.equal(a.running && b.running, true);
  });
});

describe('device migration: serialised with reset and close under the set lock', () => {
  it('a reset issued during a transition runs after it, and then wins', async () => {
    let open: () => void = () => {};
    let gate: Promise<void> | null = null;
    const { dev, file } = await setup({ point: () => gate ?? Promise.resolve() });
    gate = new Promise((resolve) => (open = resolve));
    const transition = file.setMigrationState(STOP_COPY);
    const reset = Promise.resolve(file.reset());
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      dev.calls.filter((c) => c !== 'open'),
      ['migStop'],
      'the reset waits for the transition',
    );
    gate = null;
    open();
    await transition;
    await reset;
    assert.deepEqual(
      dev.calls.filter((c) => c !== 'open'),
      ['migStop', 'migSave', 'reset', 'migStart'],
    );
    assert.equal(await file.migrationState(), RUNNING);
    assert.deepEqual(dev.violations, []);
  });

  it('the last close during a transition waits for it, then restarts the device', async () => {
    let open: () => void = () => {};
    let gate: Promise<void> | null = null;
    const { dev, file } = await setup({ point: () => gate ?? Promise.resolve() });
    gate = new Promise((resolve) => (open = resolve));
    const transition = file.setMigrationState(RESUMING);
    const closed = file.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(dev.isOpen, true);
    gate = null;
    open();
    await transition;
    await closed;
    assert.deepEqual(
      dev.calls.filter((c) => c !== 'open'),
      ['migStop', 'migStart', 'close'],
    );
    assert.deepEqual(dev.violations, []);
  });
});
