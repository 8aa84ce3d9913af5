import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { resolvePaths } from '../../src/daemon/paths.js';

describe('runtime and state directories', () => {
  it('root: /run/uvfio and /var/lib/uvfio', () => {
    const p = resolvePaths({ env: {}, uid: 0 });
    assert.deepEqual(p, {
      runtimeDir: '/run/uvfio',
      stateDir: '/var/lib/uvfio',
      controlSocket: '/run/uvfio/control.sock',
      takeoverSocket: '/run/uvfio/takeover.sock',
      socketDir: '/run/uvfio/devices',
      dbFile: '/var/lib/uvfio/uvfio.db',
    });
  });

  it('a user: the XDG directories, with their fallbacks', () => {
    const p = resolvePaths({ env: { XDG_RUNTIME_DIR: '/run/user/1000', XDG_STATE_HOME: '/home/u/.st', HOME: '/home/u' }, uid: 1000 });
    assert.equal(p.runtimeDir, '/run/user/1000/uvfio');
    assert.equal(p.stateDir, '/home/u/.st/uvfio');
    const bare = resolvePaths({ env: { HOME: '/home/u' }, uid: 1000 });
    assert.equal(bare.runtimeDir, '/tmp/uvfio-1000');
    assert.equal(bare.stateDir, '/home/u/.local/state/uvfio');
  });

  it('flags beat the environment, which beats the defaults', () => {
    const env = { UVFIO_RUNTIME_DIR: '/e/run', UVFIO_STATE_DIR: '/e/state', XDG_RUNTIME_DIR: '/x' };
    assert.deepEqual([resolvePaths({ env, uid: 0 }).runtimeDir, resolvePaths({ env, uid: 0 }).stateDir], ['/e/run', '/e/state']);
    const p = resolvePaths({ env, uid: 0, runtimeDir: 'rel/run', stateDir: '/f/state' });
    assert.equal(p.runtimeDir, `${process.cwd()}/rel/run`);
    assert.equal(p.stateDir, '/f/state');
  });

  it('refuses a runtime directory too long for socket paths', () => {
    assert.throws(() => resolvePaths({ env: {}, uid: 0, runtimeDir: `/${'d'.repeat(60)}` }), {
      code: 'EINVAL',
      message: /too long for UNIX socket paths/,
    });
  });
});
