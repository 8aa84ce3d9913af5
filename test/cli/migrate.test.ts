/**
 * `uvfio migrate` between two real daemons (two runtime and state
 * directories, spawned processes, real sockets): an mtty card's UART state
 * and an mbochs adapter's screen move from one to the other, the source
 * goes away, and every refusal is one clear line that leaves both daemons
 * as they were.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MigState, PciRegion } from '../../src/base/uapi.js';
import { migrationState, setMigrationState, VfioUserClient } from '../../src/vfio-user/index.js';
import { Daemon, fails, ok, okJson, sandbox, type Sandbox } from './harness.js';

interface Dev {
  uuid: string;
  parent: string;
  mdev_type: string;
  active: boolean;
  socket?: string;
}

let a: Sandbox;
let b: Sandbox;
let da: Daemon;
let db: Daemon;

before(async () => {
  a = sandbox();
  b = sandbox();
  [da, db] = await Promise.all([Daemon.start(a, ['--no-defaults']), Daemon.start(b, ['--no-defaults'])]);
});
after(() => {
  da?.kill();
  db?.kill();
  a?.remove();
  b?.remove();
});

async function device(sb: Sandbox, uuid: string): Promise<Dev | undefined> {
  return (await okJson<Dev[]>(sb, ['list'])).find((d) => d.uuid === uuid);
}

async function withClient<T>(socket: string, fn: (c: VfioUserClient) => Promise<T>): Promise<T> {
  const c = await VfioUserClient.connect(socket);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

describe('uvfio migrate', () => {
  it("moves an mtty card's UART state to the other daemon; the source goes away", async () => {
    const uuid = (await ok(a, ['start', '-p', 'mtty', '-t', 'mtty-2'])).trim();
    const src = (await device(a, uuid))!;
    await withClient(src.socket!, async (c) => {
      await c.regionWrite(PciRegion.BAR1, 7, Uint8Array.of(0x5a)); // SCR of port 2
      await c.regionWrite(PciRegion.BAR0, 2, Uint8Array.of(0x01)); // FCR: FIFO on
      for (const ch of 'moved') await c.regionWrite(PciRegion.BAR0, 0, Uint8Array.of(ch.charCodeAt(0)));
    });
    const moved = await okJson<{ stopCopyBytes: number; precopyRounds: number; destinationStarted: boolean; sourceStopped: boolean }>(a, [
      'migrate',
      '-u',
      uuid,
      '--to',
      b.runtimeDir,
    ]);
    assert.equal(moved.destinationStarted, true);
    assert.equal(moved.sourceStopped, true);
    assert.equal(moved.precopyRounds, 1, 'mtty has PRE_COPY');
    assert.ok(moved.stopCopyBytes > 0);
    assert.equal(await device(a, uuid), undefined, 'gone from the source');
    const dst = (await device(b, uuid))!;
    assert.deepEqual([dst.parent, dst.mdev_type, dst.active], ['mtty', 'mtty-2', true]);
    const got = await withClient(dst.socket!, async (c) => {
      const scr = (await c.regionRead(PciRegion.BAR1, 7, 1))[0];
      let text = '';
      for (let i = 0; i < 5; i++) text += String.fromCharCode((await c.regionRead(PciRegion.BAR0, 0, 1))[0]!);
      return { scr, text };
    });
    assert.deepEqual(got, { scr: 0x5a, text: 'moved' });
    await ok(b, ['stop', '-u', uuid]);
  });

  it("moves an mbochs adapter's screen: the destination's screenshot is the source's, pixel for pixel", async () => {
    const uuid = (await ok(a, ['start', '-p', 'mbochs', '-t', 'mbochs-small'])).trim();
    const src = (await device(a, uuid))!;
    await withClient(src.socket!, async (c) => {
      const dispi = (i: number, v: number) => c.regionWrite(PciRegion.BAR2, 0x500 + 2 * i, Uint8Array.of(v & 0xff, v >> 8));
      await dispi(1, 64); // XRES
      await dispi(2, 64); // YRES
      await dispi(3, 32); // BPP
      await dispi(4, 0x41); // ENABLE | LFB
      const row = new Uint8Array(256);
      for (let y = 0; y < 64; y++) {
        row.fill(y * 4);
        await c.regionWrite(PciRegion.BAR0, y * 256, row);
      }
    });
    const before = join(a.dir, 'before.png');
    await ok(a, ['screenshot', '-u', uuid, '-o', before]);
    await ok(a, ['migrate', '-u', uuid, '--to', b.runtimeDir, '--keep-source']);
    assert.ok(await device(a, uuid), '--keep-source keeps it');
    const afterPng = join(b.dir, 'after.png');
    await ok(b, ['screenshot', '-u', uuid, '-o', afterPng]);
    assert.ok(readFileSync(afterPng).equals(readFileSync(before)));
    await ok(a, ['stop', '-u', uuid]);
    await ok(b, ['stop', '-u', uuid]);
  });

  it('refuses clearly and changes nothing: not running, same daemon, another type on the destination, no destination daemon', async () => {
    const uuid = (await ok(a, ['start', '-p', 'mtty', '-t', 'mtty-1'])).trim();
    assert.match(await fails(a, ['migrate', '-u', '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', '--to', b.runtimeDir]), /not running on the source/);
    assert.match(await fails(a, ['migrate', '-u', uuid, '--to', a.runtimeDir]), /own runtime directory/);
    assert.match(await fails(a, ['migrate', '-u', uuid]), /--to DIR/);
    assert.match(await fails(a, ['migrate', '-u', uuid, '--to', join(a.dir, 'nowhere')]), /^uvfio: the destination daemon: /);
    await ok(b, ['start', '-u', uuid, '-p', 'mtty', '-t', 'mtty-2']);
    assert.match(await fails(a, ['migrate', '-u', uuid, '--to', b.runtimeDir]), /runs on the destination as mtty\/mtty-2/);
    assert.equal((await device(a, uuid))?.active, true, 'the source runs on');
    assert.equal((await device(b, uuid))?.mdev_type, 'mtty-2');
    await ok(a, ['stop', '-u', uuid]);
    await ok(b, ['stop', '-u', uuid]);
  });

  it('a move that fails after the destination device was started removes that device again', async () => {
    const uuid = (await ok(a, ['start', '-p', 'mtty', '-t', 'mtty-1'])).trim();
    // Another client holds the source in STOP_COPY: the move's PRE_COPY is an arc the uAPI refuses.
    await withClient((await device(a, uuid))!.socket!, async (c) => {
      await setMigrationState(c, MigState.STOP_COPY);
      assert.match(await fails(a, ['migrate', '-u', uuid, '--to', b.runtimeDir]), /source → PRE_COPY/);
      assert.equal(await device(b, uuid), undefined, 'the device started for the move is gone');
      assert.equal(await migrationState(c), MigState.RUNNING, 'the source was taken back to RUNNING');
    });
    assert.equal((await device(a, uuid))?.active, true);
    await ok(a, ['stop', '-u', uuid]);
  });

  it("the daemon's op against a destination that refuses the state: the error names the step, the source runs on", async () => {
    const uuid = (await ok(a, ['start', '-p', 'mtty', '-t', 'mtty-1'])).trim();
    // The daemon's op, pointed at a device of another type: its header is
    // refused (vfio-user carries the errno only, not the sentence).
    const other = (await ok(b, ['start', '-p', 'mtty', '-t', 'mtty-2'])).trim();
    const sock = (await device(b, other))!.socket!;
    const { request } = await import('../../src/cli/client.js');
    await assert.rejects(
      request(join(a.runtimeDir, 'control.sock'), 'migrate', { uuid, socket: sock }),
      (e: Error & { code?: string }) => e.code === 'EINVAL' && /writing the destination's stream/.test(e.message),
    );
    assert.equal((await device(a, uuid))?.active, true);
    await withClient((await device(a, uuid))!.socket!, async (c) => {
      await c.regionWrite(PciRegion.BAR0, 7, Uint8Array.of(9));
      assert.equal((await c.regionRead(PciRegion.BAR0, 7, 1))[0], 9, 'the source answers, running');
    });
    await ok(a, ['stop', '-u', uuid]);
    await ok(b, ['stop', '-u', other]);
  });
});
