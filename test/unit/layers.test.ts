import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

/** Layers, low to high: a module may import its own layer and those below, never one above. */
const RANK: Record<string, number> = { core: 0, state: 1, host: 1, daemon: 2, ops: 2, commands: 3, cli: 4 };

/** Relative module specifiers of a file: static imports and re-exports (type-only too), import() calls and import() types. */
function specifiers(path: string): string[] {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      out.push(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out.filter((s) => s.startsWith('.'));
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

interface Report {
  /** `a -> b` for each import from a lower layer into a higher one. */
  upward: string[];
  /** Each import cycle between files, as `a -> b -> a`. */
  cycles: string[];
  /** Files in a folder under src/ that has no layer. */
  unlayered: string[];
}

/** Reads every import under root/src and reports what breaks the layer rule. */
function checkLayers(root: string): Report {
  const src = join(root, 'src');
  const name = (p: string) => relative(root, p);
  const layerOf = (p: string) => relative(src, p).split('/')[0]!;
  const edges = new Map<string, string[]>();
  const report: Report = { upward: [], cycles: [], unlayered: [] };
  for (const file of tsFiles(src)) {
    const from = name(file);
    if (RANK[layerOf(file)] === undefined) report.unlayered.push(from);
    const targets = [...new Set(specifiers(file).map((s) => name(resolve(dirname(file), s.replace(/\.js$/, '.ts')))))];
    edges.set(from, targets);
    for (const to of targets) {
      const a = RANK[layerOf(join(root, from))];
      const b = RANK[layerOf(join(root, to))];
      if (a !== undefined && b !== undefined && b > a) report.upward.push(`${from} -> ${to}`);
    }
  }
  // Tarjan's strongly connected components: each with more than one file (or a file importing itself) holds a cycle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || edges.get(v)!.includes(v)) components.push(component);
  };
  for (const v of edges.keys()) if (!index.has(v)) connect(v);
  // One concrete cycle per component, found by a search that stays inside it.
  for (const component of components) {
    const inside = new Set(component);
    const start = component.sort()[0]!;
    const path = [start];
    const seen = new Set<string>();
    const walk = (v: string): boolean => {
      for (const w of edges.get(v)!) {
        if (w === start) return true;
        if (!inside.has(w) || seen.has(w)) continue;
        seen.add(w);
        path.push(w);
        if (walk(w)) return true;
        path.pop();
      }
      return false;
    };
    walk(start);
    report.cycles.push([...path, start].join(' -> '));
  }
  return report;
}

describe('module layers (core < state, host < daemon, ops < commands < cli)', () => {
  const fixture = mkdtempSync(join(tmpdir(), 'knarr-layers-'));
  afterAll(() => rmSync(fixture, { recursive: true, force: true }));
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(fixture, path)), { recursive: true });
    writeFileSync(join(fixture, path), text);
  };

  it('names every cycle, upward import and unlayered file it finds', () => {
    write('src/core/a.ts', "import type { B } from './b.js';\nexport type A = B;\n");
    write('src/core/b.ts', "export type B = import('./a.js').A;\n");
    write('src/host/tool.ts', "export const load = () => import('../commands/run.js');\n");
    write('src/ops/x.ts', "export { y } from './y.js';\n");
    write('src/ops/y.ts', "// import './x.js' in a comment is no import\nexport const y = 1;\n");
    write('src/commands/run.ts', "import { y } from '../ops/x.js';\nexport const run = y;\n");
    write('src/cli/main.ts', "import '../commands/run.js';\n");
    write('src/misc/m.ts', 'export {};\n');
    expect(checkLayers(fixture)).toEqual({
      upward: ['src/host/tool.ts -> src/commands/run.ts'],
      cycles: ['src/core/a.ts -> src/core/b.ts -> src/core/a.ts'],
      unlayered: ['src/misc/m.ts'],
    });
  });

  it('src/ has no import cycle and no import from a lower layer into a higher one', () => {
    const root = new URL('../../', import.meta.url).pathname;
    // Each entry names the offending edge: move the shared code down a layer, or pass it in from above.
    expect(checkLayers(root)).toEqual({ upward: [], cycles: [], unlayered: [] });
  });
});
