/**
 * A vfio-user server process for hostile tests that need a device the
 * daemon does not have: the real VfioUserServer over two test fixture
 * devices (test/vfio-user/fixture-device.ts: DMA doorbells, ops that may
 * be slow or never settle), a bystander and an attacker, each in a device
 * set of its own. Its command line is one JSON argument:
 * `{ dir, attacker?: FixtureOptions, limits?: Partial<ServerLimits> }`.
 * It logs JSON lines on stderr like the daemon, "daemon ready" with the two
 * socket paths once both listen, and closes everything on SIGTERM (exit
 * 0, after 3 s at most, as the daemon's shutdown is bounded). Run without arguments (by a test runner globbing the folder) it does
 * nothing.
 */
import { VfioCore } from '../../src/core/index.js';
import { Logger } from '../../src/daemon/log.js';
import { VfioUserServer, type ServerLimits } from '../../src/vfio-user/index.js';
import { FixtureDevice, type FixtureOptions } from '../vfio-user/fixture-device.js';
import { BuggyFixture } from './buggy-fixture.js';

interface Spec {
  dir: string;
  attacker?: Omit<FixtureOptions, 'name' | 'core'>;
  limits?: Partial<ServerLimits>;
}

const arg = process.argv[2];
if (arg !== undefined) {
  const spec = JSON.parse(arg) as Spec;
  const log = new Logger();
  const core = new VfioCore();
  const bystander = new FixtureDevice({ name: 'bystander', core });
  const attacker = new BuggyFixture({ name: 'attacker', core, ...spec.attacker });
  bystander.register({ setKey: 'bystander' });
  attacker.register({ setKey: 'attacker' });
  const server = new VfioUserServer({ core, socketDir: spec.dir, log, ...(spec.limits ? { limits: spec.limits } : {}) });
  log.info('daemon ready', { bystander: server.socketPath('bystander'), attacker: server.socketPath('attacker') });
  // Like the daemon: shutdown waits for the clients' teardown, but only so long.
  process.once('SIGTERM', () => {
    const late = setTimeout(() => {
      log.warn('dropping clients did not finish in time');
      process.exit(0);
    }, 3_000);
    void server.close().then(() => {
      clearTimeout(late);
      log.info('daemon stopped');
      process.exit(0);
    });
  });
}
