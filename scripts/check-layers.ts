/**
 * `npm run lint:layers`: checks that src/ keeps its layering (see
 * scripts/layers.ts); prints each problem and exits 1 when there is one.
 */
import { fileURLToPath } from 'node:url';
import { checkLayers } from './layers.js';

// dist/scripts/ → the repository's src/
const src = fileURLToPath(new URL('../../src', import.meta.url));
const report = checkLayers(src);
for (const p of report.problems) console.error(`layers: ${p}`);
const typeOnly = report.edges.filter((e) => e.typeOnly).length;
console.log(
  `layers: ${report.files.length} files, ${report.edges.length} imports (${typeOnly} type-only): ` +
    (report.problems.length === 0 ? 'no upward import, no import cycle' : `${report.problems.length} problems`),
);
process.exitCode = report.problems.length === 0 ? 0 : 1;
