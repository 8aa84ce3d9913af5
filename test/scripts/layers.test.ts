import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers } from '../../scripts/layers.js';

// dist/test/scripts/ → the repository's src/ (the TypeScript, not dist).
const SRC = fileURLToPath(new URL('../../../src', import.meta.url));

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'uvfio-layers-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test('the source tree keeps the layering: no upward import, no import cycle', () => {
  const report = checkLayers(SRC);
  assert.ok(report.files.length > 100, `read ${report.files.length} files`);
  assert.deepEqual(report.problems, []);
});

test('an upward import added to the real tree is caught, naming the file and line', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'uvfio-layers-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  cpSync(SRC, root, { recursive: true });
  appendFileSync(join(root, 'base/errors.ts'), "\nimport { VfioCore } from '../core/vfio-core.js';\nvoid VfioCore;\n");
  const { problems } = checkLayers(root);
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0]!, /^base\/errors\.ts:\d+: imports core\/vfio-core\.ts: base may not import core, which is not below it$/);
  assert.match(problems[1]!, /^import cycle: base\/errors\.ts → core\/vfio-core\.ts → .* → base\/errors\.ts$/);
});

test('a type-only upward import is refused too', (t) => {
  const root = tree({
    'base/a.ts': "import type { B } from '../core/b.js';\nexport type A = B;\n",
    'core/b.ts': 'export type B = number;\n',
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.deepEqual(checkLayers(root).problems, ['base/a.ts:1: imports core/b.ts (types): base may not import core, which is not below it']);
});

test('a cycle of imports that run is refused; a circle of type-only imports is not', (t) => {
  const root = tree({
    'core/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
    'core/b.ts': "import { c } from './c.js';\nexport const b = () => c;\n",
    'core/c.ts': "import { a } from './a.js';\nexport const c = () => a;\n",
    'core/t1.ts': "import type { T2 } from './t2.js';\nexport interface T1 { other: T2 }\n",
    'core/t2.ts': "import { type T1 } from './t1.js';\nexport interface T2 { other: T1 }\n",
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.deepEqual(checkLayers(root).problems, ['import cycle: core/a.ts → core/b.ts → core/c.ts → core/a.ts']);
});

test('downward imports, re-exports and the entry file pass; an unknown folder, a sideways import and a missing file do not', (t) => {
  const root = tree({
    'index.ts': "export * from './cli/main.js';\n",
    'cli/main.ts': "export { x } from '../base/x.js';\nimport '../daemon/d.js';\n",
    'daemon/d.ts': "export const d = await import('../base/x.js');\n",
    'base/x.ts': 'export const x = 1;\n',
    'widgets/w.ts': "import { x } from '../base/x.js';\nexport const w = x;\n",
    'pci/p.ts': "import { x } from '../base/nope.js';\nexport const p = x;\n",
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { problems, edges } = checkLayers(root);
  assert.equal(edges.length, 5);
  assert.deepEqual(problems, [
    'pci/p.ts:1: imports ../base/nope.js, which is not a source file under ' + root,
    'src/widgets/ is in no layer: give it its place in the layer table',
  ]);
  const sideways = checkLayers(root, [['cli', 'daemon'], ['widgets', 'pci'], ['base']]).problems.filter((p) => p.includes('not below'));
  assert.deepEqual(sideways, ['cli/main.ts:2: imports daemon/d.ts: cli may not import daemon, which is not below it']);
});
