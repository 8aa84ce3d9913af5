/**
 * The console from the command line: `uvfio daemon --http`, `--no-vnc`,
 * `uvfio console`, and the VNC address in `list -v` and `list --json`.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { Daemon, fails, ok, okJson, sandbox, type Sandbox } from '../cli/harness.js';
import { RfbClient } from './rfb-client.js';

const sandboxes: Sandbox[] = [];
const daemons: Daemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  for (const s of sandboxes) s.remove();
});
async function daemon(args: string[]): Promise<{ sb: Sandbox; d: Daemon }> {
  const sb = sandbox();
  sandboxes.push(sb);
  const d = await Daemon.start(sb, args);
  daemons.push(d);
  return { sb, d };
}

interface Listed {
  uuid: string;
  parent: string;
  vnc?: string;
}

describe('uvfio console, --http and VNC addresses', () => {
  it('gives each display device a VNC server on loopback, shown by list -v and list --json', async () => {
    const { sb, d } = await daemon(['--http', '0']);
    const listed = await okJson<Listed[]>(sb, ['list']);
    const byParent = new Map(listed.map((l) => [l.parent, l]));
    assert.equal(byParent.get('mtty')!.vnc, undefined, 'mtty has no screen');
    for (const parent of ['mdpy', 'mbochs']) {
      const vnc = byParent.get(parent)!.vnc!;
      assert.match(vnc, /^127\.0\.0\.1:\d+$/);
      const c = await RfbClient.open(vnc);
      const init = await c.handshake();
      assert.equal(init.name, `uvfio ${byParent.get(parent)!.uuid}`);
      c.close();
    }
    const text = await ok(sb, ['list', '-v']);
    assert.match(text, new RegExp(`VNC: ${byParent.get('mdpy')!.vnc!.replace(/\./g, '\\.')}`));
    assert.match(d.stdout, /vnc: {4}127\.0\.0\.1:\d+/);
    assert.match(d.stdout, /console: http:\/\/127\.0\.0\.1:\d+\/ \("uvfio console" prints the URL with its token\)/);
    assert.doesNotMatch(d.stdout + JSON.stringify(d.logs), /token=/, 'the token is in no output nor log');

    const url = (await ok(sb, ['console'])).trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    const json = await okJson<{ url: string; address: string }>(sb, ['console']);
    assert.equal(json.url, url);
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 303);
  });

  it('without --http there is no console, and says so; --no-vnc serves no VNC', async () => {
    const { sb } = await daemon(['--no-vnc']);
    assert.match(await fails(sb, ['console']), /^uvfio: this daemon serves no web console: start it with --http \[ADDR:\]PORT$/);
    const listed = await okJson<Listed[]>(sb, ['list']);
    assert.ok(listed.length === 3 && listed.every((l) => l.vnc === undefined));
  });

  it('refuses a malformed --http in words', async () => {
    const sb = sandbox();
    sandboxes.push(sb);
    for (const bad of ['', 'abc', '70000', '1.2.3.4:', '[zz]:80', ':80']) {
      assert.match(await fails(sb, ['daemon', '--http', bad]), /--http: .* is not/, bad);
    }
    assert.match(await fails(sb, ['console']), /no uvfio daemon is running/);
  });
});
