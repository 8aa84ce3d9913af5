/**
 * The daemon with a real vfio-user client attached, as QEMU would be:
 * `stop` and shutdown ask the client to let go through the REQ interrupt
 * and wait for it; a client that does not let go is dropped at shutdown.
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PciIrq } from '../../src/base/uapi.js';
import { VfioUserClient } from '../../src/vfio-user/client.js';
import { Daemon, ok, okJson, sandbox, uvfio, type Sandbox } from '../cli/harness.js';

const U = 'c0ffee00-1b4b-45ef-ad62-de05be9171df';
const sandboxes: Sandbox[] = [];
const daemons: Daemon[] = [];
const clients: VfioUserClient[] = [];
after(() => {
  for (const c of clients) c.close();
  for (const d of daemons) d.kill();
  for (const s of sandboxes) s.remove();
});

async function setup(args: string[] = []): Promise<{ sb: Sandbox; daemon: Daemon }> {
  const sb = sandbox();
  sandboxes.push(sb);
  const daemon = await Daemon.start(sb, ['--no-defaults', ...args]);
  daemons.push(daemon);
  return { sb, daemon };
}

/** Connects like QEMU, with an eventfd on the REQ interrupt. */
async function attach(socket: string) {
  const client = await VfioUserClient.connect(socket);
  clients.push(client);
  const req = (await client.setIrqEventfds(PciIrq.REQ, 0, 1)).line(0);
  return { client, req };
}

describe('uvfio daemon with a vfio-user client attached', () => {
  it('stop asks the client through REQ, and returns once it lets go', async () => {
    const { sb } = await setup();
    const { socket } = await okJson<{ socket: string }>(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-1']);
    const { client, req } = await attach(socket);
    assert.equal((await client.getDeviceInfo()).numRegions > 0, true);
    let finished = false;
    const stop = uvfio(sb, ['stop', '-u', U]).then((r) => {
      finished = true;
      return r;
    });
    await req.next(5_000);
    await sleep(200);
    assert.equal(finished, false, 'stop waits while the client holds the device');
    assert.equal(existsSync(socket), false, 'no new client can connect meanwhile');
    client.close();
    const r = await stop;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await okJson(sb, ['list']), []);
  });

  it('SIGTERM: a client that ignores REQ is dropped after --shutdown-timeout, and the daemon exits 0', async () => {
    const { sb, daemon } = await setup(['--shutdown-timeout', '300']);
    await ok(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-2']);
    const [{ socket }] = await okJson<Array<{ socket: string }>>(sb, ['list']);
    const { client, req } = await attach(socket!);
    const closed = new Promise<void>((resolve) => {
      client.onClose = () => resolve();
    });
    const started = Date.now();
    const code = daemon.stop('SIGTERM');
    await req.next(5_000);
    assert.equal(await code, 0);
    await closed;
    assert.ok(Date.now() - started < 5_000);
    assert.ok(daemon.logs.some((l) => /did not let go in time/.test(l.msg)), JSON.stringify(daemon.logs));
    assert.equal(existsSync(socket!), false);
  });
});
