import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The developers' guide: no source file over 600 lines, no class over 25 methods. Held here for
// the fleet layer, which had one of the three god classes.
const root = join(import.meta.dirname, '../../../agent/fleet');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function classSizes(file: string): Array<{ name: string; methods: number }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Array<{ name: string; methods: number }> = [];
  const visit = (node: ts.Node) => {
    if (ts.isClassLike(node)) {
      const methods = node.members.filter(
        (m) =>
          ts.isMethodDeclaration(m) ||
          ts.isGetAccessorDeclaration(m) ||
          ts.isSetAccessorDeclaration(m) ||
          ts.isConstructorDeclaration(m),
      ).length;
      out.push({ name: node.name?.text ?? '(anonymous)', methods });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe('the fleet layer stays small', () => {
  it('has no source file over 600 lines and no class over 25 methods (constructor and accessors counted)', () => {
    const files = sources(root);
    expect(files.length).toBeGreaterThan(10);
    const long = files
      .map((f) => ({ f, lines: readFileSync(f, 'utf8').split('\n').length }))
      .filter((x) => x.lines > 600);
    expect(long).toEqual([]);
    const big = files.flatMap((f) => classSizes(f).filter((c) => c.methods > 25));
    expect(big).toEqual([]);
  });
});
