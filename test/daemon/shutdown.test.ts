/**
 * Daemon.stop in process, with a device server that misbehaves: shutdown
 * is bounded by the shutdown timeout whatever the server does.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon/daemon.js';
import { Logger } from '../../src/daemon/log.js';
import { resolvePaths } from '../../src/daemon/paths.js';
import { fakeParents } from './fake-parent.js';

const dir = mkdtempSync(join(tmpdir(), 'uvfio-stop-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('Daemon.stop', () => {
  it('finishes, and unregisters every device, when dropping the clients never completes', async () => {
    const lines: Array<{ msg: string }> = [];
    const daemon = await Daemon.start({
      paths: resolvePaths({ runtimeDir: join(dir, 'run'), stateDir: join(dir, 'state') }),
      log: new Logger((line) => void lines.push(JSON.parse(line) as { msg: string })),
      parents: fakeParents(),
      createDeviceServer: () => ({
        serve: async () => {},
        socketPath: () => undefined,
        clients: () => [],
        clientDetails: () => [],
        dropClient: () => Promise.resolve(false),
        watchRequests: () => ({ asked: () => false, close: () => {} }),
        trace: () => ({ events: 0, dropped: 0, close: () => {} }),
        close: () => new Promise<void>(() => {}),
      }),
      shutdownTimeoutMs: 50,
      print: () => {},
    });
    const [device] = daemon.bus.devices();
    assert.ok(device, 'the default device was started');
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), 5_000);
    });
    try {
      assert.equal(await Promise.race([daemon.stop('test').then(() => 'stopped' as const), hung]), 'stopped');
    } finally {
      clearTimeout(timer);
    }
    assert.equal(device.device.state, 'released');
    assert.deepEqual(daemon.bus.parents(), []);
    assert.ok(
      lines.some((l) => l.msg === 'dropping clients did not finish in time'),
      JSON.stringify(lines),
    );
    assert.equal(lines.at(-1)?.msg, 'daemon stopped');
  });
});
