/**
 * The layering rule of ARCHITECTURE.md, checked on the source: every import
 * between src/ folders points down the table below, and no files import each
 * other in a circle. It reads the TypeScript source with the compiler's own
 * parser (already a dependency), so an `import type` is told apart from an
 * import that runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/**
 * The layers from the top down. A file may import its own layer and any
 * layer below it; src/index.ts (the package's entry) sits above them all.
 * A folder missing here is an error: a new folder must take its place.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['daemon'],
  ['console'],
  ['vfio-user'],
  ['drivers'],
  ['mdev'],
  ['pci'],
  ['core'],
  ['iommufd'],
  ['native'],
  ['base'],
];

/** One import of one source file. */
export interface ImportEdge {
  /** Importing file, relative to the source root, with '/' separators. */
  from: string;
  /** Imported file, the same way. */
  to: string;
  /** Erased at compile time (`import type`, type-only specifiers, `import('…')` types). */
  typeOnly: boolean;
  /** 1-based line of the import. */
  line: number;
}

export interface LayerReport {
  /** Every source file read, relative to the root. */
  files: string[];
  edges: ImportEdge[];
  /** One sentence per broken rule; empty when the tree keeps the layering. */
  problems: string[];
}

/** Reads every .ts file under `root` (a src/ folder) and checks the layering. */
export function checkLayers(root: string, layers: readonly (readonly string[])[] = LAYERS): LayerReport {
  const absRoot = resolve(root);
  const files = listTs(absRoot).map((f) => toKey(absRoot, f));
  const known = new Set(files);
  const edges: ImportEdge[] = [];
  const problems: string[] = [];
  for (const file of files) {
    for (const imp of importsOf(join(absRoot, file))) {
      if (!imp.specifier.startsWith('.')) continue; // a package or node: builtin
      const target = toKey(absRoot, resolve(dirname(join(absRoot, file)), imp.specifier.replace(/\.js$/, '.ts')));
      if (!known.has(target)) {
        problems.push(`${file}:${imp.line}: imports ${imp.specifier}, which is not a source file under ${root}`);
        continue;
      }
      edges.push({ from: file, to: target, typeOnly: imp.typeOnly, line: imp.line });
    }
  }

  const rank = new Map<string, number>();
  layers.forEach((names, i) => names.forEach((n) => rank.set(n, layers.length - i)));
  const layerOf = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '');
  const rankOf = (file: string): number | undefined => (layerOf(file) === '' ? layers.length + 1 : rank.get(layerOf(file)));

  for (const folder of new Set(files.map(layerOf))) {
    if (folder !== '' && !rank.has(folder)) problems.push(`src/${folder}/ is in no layer: give it its place in the layer table`);
  }
  for (const e of edges) {
    const from = rankOf(e.from);
    const to = rankOf(e.to);
    if (from === undefined || to === undefined) continue;
    if (to > from || (to === from && layerOf(e.from) !== layerOf(e.to))) {
      problems.push(
        `${e.from}:${e.line}: imports ${e.to}${e.typeOnly ? ' (types)' : ''}: ${layerOf(e.from) || 'the entry'} may not import ${layerOf(e.to) || 'the entry'}, which is not below it`,
      );
    }
  }

  for (const cycle of cycles(
    files,
    edges.filter((e) => !e.typeOnly),
  )) {
    problems.push(`import cycle: ${[...cycle, cycle[0]].join(' → ')}`);
  }
  return { files, edges, problems };
}

interface RawImport {
  specifier: string;
  typeOnly: boolean;
  line: number;
}

/** The module specifiers one file imports or re-exports, with their kind. */
function importsOf(path: string): RawImport[] {
  const text = readFileSync(path, 'utf8');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: RawImport[] = [];
  const add = (spec: ts.Expression | undefined, typeOnly: boolean, node: ts.Node): void => {
    if (!spec || !ts.isStringLiteral(spec)) return;
    out.push({ specifier: spec.text, typeOnly, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, importIsTypeOnly(node.importClause), node);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      add(node.moduleSpecifier, node.isTypeOnly || (named !== undefined && named.length > 0 && named.every((e) => e.isTypeOnly)), node);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true, node);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function importIsTypeOnly(clause: ts.ImportClause | undefined): boolean {
  if (!clause) return false; // import './x.js' runs x
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const b = clause.namedBindings;
  return b !== undefined && ts.isNamedImports(b) && b.elements.length > 0 && b.elements.every((e) => e.isTypeOnly);
}

/** The strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(files: readonly string[], edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)!.push(e.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  // Iterative, so a long chain of imports cannot overflow the call stack.
  for (const start of files) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; i: number }> = [{ node: start, i: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const succ = next.get(top.node)!;
      if (top.i < succ.length) {
        const w = succ[top.i++]!;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) === index.get(top.node)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.node);
        if (scc.length > 1 || succ.includes(top.node)) found.push(scc.reverse());
      }
    }
  }
  return found;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

function toKey(root: string, abs: string): string {
  return relative(root, abs).split(sep).join('/');
}
