import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The shape of src/ the project keeps: no import circle (type-only imports included), imports
// that run one way between folders, and no file past the size where a role usually splits.

const root = resolve(__dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/g;

/** Every relative import of each file (type-only ones too), as paths under src without `.ts`. */
function graph(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8');
    const from = relative(root, file).replace(/\.ts$/, '');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const target = resolve(dirname(file), m[1] as string);
      const rel = relative(root, target);
      const known = [rel, join(rel, 'index')].find((c) => files(root).includes(join(root, `${c}.ts`)));
      if (known) deps.push(known);
    }
    out.set(from, deps);
  }
  return out;
}

/** The first import circle found, as a path that ends where it starts; undefined when none. */
function circle(g: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const visit = (node: string, path: string[]): string[] | undefined => {
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    if (state.get(node) === 'done') return undefined;
    state.set(node, 'open');
    for (const next of g.get(node) ?? []) {
      const found = visit(next, [...path, node]);
      if (found) return found;
    }
    state.set(node, 'done');
    return undefined;
  };
  for (const node of g.keys()) {
    const found = visit(node, []);
    if (found) return found;
  }
  return undefined;
}

const folder = (module: string): string => (module.includes('/') ? (module.split('/')[0] as string) : '.');

describe('the shape of src/', () => {
  const g = graph();

  it('has no import circle, type-only imports included', () => {
    // The graph is read right: the facade imports its parts, and every module is in it.
    expect(g.get('coalescer')).toEqual(expect.arrayContaining(['assemble', 'registry/model']));
    expect(g.size).toBe(files(root).length);
    expect(circle(g)).toBeUndefined();
    // And a circle would be found.
    expect(
      circle(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
        ]),
      ),
    ).toEqual(['a', 'b', 'c', 'a']);
  });

  it('keeps its imports one way: capture and drain never import each other, redis/ knows no TypeORM, leaves stay leaves', () => {
    const bad: string[] = [];
    const forbid = (from: string, to: string[]): void => {
      for (const [module, deps] of g) {
        if (folder(module) !== from) continue;
        for (const dep of deps) {
          // registry/members is a leaf (ids and members), usable below the registry.
          if (dep === 'registry/members') continue;
          if (to.includes(folder(dep)) || to.includes(dep)) bad.push(`${module} -> ${dep}`);
        }
      }
    };
    // What stands above the capture, delivery and drain layers, which none of them may import.
    const above = [
      'ops',
      'fresh',
      'verify',
      'runner',
      'cli',
      'dashboard',
      'metrics',
      'nestjs',
      'testing',
      'coalescer',
      'assemble',
    ];
    // The save path never claims; the drain never cares how a mark was made.
    forbid('capture', ['drain', ...above]);
    forbid('drain', ['capture', 'delivery', ...above]);
    forbid('delivery', ['capture', 'drain', ...above]);
    forbid('redis', ['registry', 'capture', 'delivery', 'drain', 'ops', 'fresh', 'aggregates', 'db', 'coalescer', 'assemble']);
    forbid('registry', ['capture', 'delivery', 'drain', 'ops', 'fresh', 'verify', 'runner', 'cli', 'coalescer', 'assemble']);
    forbid('aggregates', ['registry', 'capture', 'delivery', 'drain', 'ops', 'fresh', 'coalescer', 'assemble']);
    forbid('ops', ['capture', 'drain', 'fresh', 'runner', 'cli', 'dashboard', 'coalescer', 'assemble']);
    forbid('runner', ['cli', 'dashboard', 'metrics', 'nestjs', 'assemble']);
    expect(bad).toEqual([]);
    for (const module of g.keys()) {
      if (folder(module) !== 'redis') continue;
      expect(readFileSync(join(root, `${module}.ts`), 'utf8'), module).not.toMatch(/from 'typeorm'/);
    }
  });

  it('has no source file over 400 lines, and a facade of at most 300', () => {
    const long = files(root)
      .map((f) => ({ file: relative(root, f), lines: readFileSync(f, 'utf8').split('\n').length }))
      .filter((f) => f.lines > (f.file === 'coalescer.ts' ? 300 : 400));
    expect(long).toEqual([]);
  });
});
