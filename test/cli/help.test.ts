/**
 * The command line explains itself from one description per verb: --help,
 * `uvfio help VERB`, the man page in the repository, and the bash and zsh
 * completions, all made from it and all checked against it here.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { optionLabel } from '../../src/cli/help.js';
import { Daemon, fails, MAIN, ok, sandbox, type Sandbox } from './harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const U = '5d4a3b2c-1e0f-4a9b-8c7d-6e5f4a3b2c1d';

let sb: Sandbox;
before(() => {
  sb = sandbox();
});
after(() => sb.remove());

/** Whether `program` runs here. */
function have(program: string): boolean {
  return spawnSync(program, ['--version'], { stdio: 'ignore' }).status === 0;
}

describe('help', () => {
  it('every verb: --help and "help VERB" print the same page, with every option shown and every example', async () => {
    for (const c of COMMANDS) {
      const page = await ok(sb, ['help', c.name]);
      assert.equal(await ok(sb, [c.name, '--help']), page, c.name);
      assert.ok(page.startsWith(`Usage: uvfio ${c.synopsis[0]}\n`), page);
      for (const o of c.options) {
        assert.equal(page.includes(optionLabel(o)), !o.hidden, `${c.name}: ${optionLabel(o)}`);
      }
      for (const e of c.examples) assert.ok(page.includes(`  ${e.command}\n      ${e.says}\n`), `${c.name}: ${e.command}`);
      assert.ok(c.examples.length > 0, `${c.name} has an example`);
    }
  });

  it('"help" lists every verb; an unknown one is one error line', async () => {
    const text = await ok(sb, ['help']);
    assert.equal(await ok(sb, ['--help']), text);
    for (const c of COMMANDS) assert.match(text, new RegExp(`\\n  ${c.name} +${c.summary.replace(/[()]/g, '\\$&')}\\n`));
    assert.match(await fails(sb, ['help', 'frob']), /^uvfio: unknown command "frob" \(commands: daemon, /);
    assert.match(await fails(sb, ['help', 'stop', 'list']), /^uvfio: help: one COMMAND at most/);
    assert.match(await fails(sb, ['completion', 'fish']), /^uvfio: completion needs a shell: bash or zsh, not "fish"$/);
  });
});

describe('man page', () => {
  it('man/man1/uvfio.1 is what "uvfio help --man" prints (regenerate it with that command)', async () => {
    assert.equal(readFileSync(join(ROOT, 'man', 'man1', 'uvfio.1'), 'utf8'), await ok(sb, ['help', '--man']));
  });

  it('names every verb and every shown option, and groff renders it without a warning', { skip: !have('groff') && 'groff is not installed' }, () => {
    const page = readFileSync(join(ROOT, 'man', 'man1', 'uvfio.1'), 'utf8');
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww'], { input: page, encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
    // eslint-disable-next-line no-control-regex -- groff's overstrike: a character, a backspace, the character again
    const text = r.stdout.replace(/.\x08/g, '');
    for (const c of COMMANDS) {
      assert.ok(text.includes(`uvfio ${c.name}`), c.name);
      for (const o of c.options) if (!o.hidden) assert.ok(text.includes(`--${o.name}`), `${c.name} --${o.name}`);
    }
  });
});

describe('completion', () => {
  let daemon: Daemon;
  let bin: string;
  before(async () => {
    daemon = await Daemon.start(sb, ['--no-defaults']);
    await ok(sb, ['start', '-u', U, '-p', 'mtty', '-t', 'mtty-2']);
    bin = join(sb.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'uvfio'), `#!/bin/sh\nexec '${process.execPath}' '${MAIN}' "$@"\n`);
    chmodSync(join(bin, 'uvfio'), 0o755);
  });
  after(() => daemon?.kill());

  /**
   * What the shell offers for the command line `words` (the last one is
   * being completed). bash: the completion function, called as bash calls
   * it. zsh: through bashcompinit's compgen -F, as its _bash_complete calls
   * it; zsh's compadd then keeps the matches that start with the word, which
   * is done here.
   */
  function complete(shell: 'bash' | 'zsh', words: string[]): string[] {
    const quoted = words.map((w) => `'${w}'`).join(' ');
    const script =
      shell === 'bash'
        ? `source <(uvfio completion bash)
COMP_WORDS=(${quoted}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=()
_uvfio
printf '%s\n' "\${COMPREPLY[@]}"`
        : `autoload -U compinit && compinit -D -u
source <(uvfio completion zsh)
words=(${quoted}); CURRENT=\${#words}
COMP_WORDS=("\${words[@]}"); COMP_CWORD=$((CURRENT - 1))
compgen -F _uvfio -- "\${words[CURRENT]}"`;
    const r = spawnSync(shell, shell === 'zsh' ? ['-f', '-c', script] : ['-c', script], {
      env: { ...sb.env, PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    return r.stdout.split('\n').filter((l) => l !== '' && l.startsWith(words.at(-1)!));
  }

  for (const shell of ['bash', 'zsh'] as const) {
    it(
      `${shell}: verbs, options, fixed words, and the UUIDs, parents and types uvfio knows`,
      { skip: !have(shell) && `${shell} is not installed` },
      () => {
        assert.deepEqual(complete(shell, ['uvfio', 'st']), ['start', 'stop']);
        assert.deepEqual(complete(shell, ['uvfio', 'undefine', '--']), ['--uuid', '--parent', '--json', '--runtime-dir', '--state-dir', '--help']);
        assert.deepEqual(complete(shell, ['uvfio', 'daemon', '--log-level', 'w']), ['warn']);
        assert.deepEqual(complete(shell, ['uvfio', 'help', 'sc']), ['screenshot']);
        assert.deepEqual(complete(shell, ['uvfio', 'stop', '-u', '']), [U]);
        assert.deepEqual(complete(shell, ['uvfio', 'start', '-p', 'mt']), ['mtty']);
        assert.deepEqual(complete(shell, ['uvfio', 'start', '-p', 'mtty', '-t', 'mtty-']), ['mtty-1', 'mtty-2']);
      },
    );
  }

  it('every verb and every option the parser takes is offered', () => {
    const bash = spawnSync(process.execPath, [MAIN, 'completion', 'bash'], { encoding: 'utf8' }).stdout;
    for (const c of COMMANDS) {
      assert.match(bash, new RegExp(`\\n    ${c.name}\\)\\n`));
      for (const o of c.options) if (!o.hidden) assert.ok(bash.includes(`--${o.name}`), `${c.name} --${o.name}`);
    }
  });
});
