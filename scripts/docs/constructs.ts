/**
 * The construct props page, from the TSDoc of every interface the construct library exports,
 * read with the TypeScript compiler API (so inherited props and `@default` tags come out exactly
 * as an editor shows them).
 */
import { join } from 'node:path';
import ts from 'typescript';
import { anchor, code, page, table } from './markdown.js';
import { linkSpec } from './policy.js';
import { CONSTRUCTS_ENTRY } from './sources.js';

interface Documented {
  readonly name: string;
  readonly summary: string;
  readonly kind: 'class' | 'interface';
  readonly props: readonly (readonly string[])[];
}

function docOf(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
}

function tag(symbol: ts.Symbol, checker: ts.TypeChecker, name: string): string | undefined {
  const found = symbol.getJsDocTags(checker).filter((t) => t.name === name);
  if (found.length === 0) return undefined;
  return found.map((t) => ts.displayPartsToString(t.text).trim()).join(' ');
}

/** `@default - the construct id` → "the construct id"; `@default 'default'` → `'default'` as code. */
function defaultText(raw: string | undefined, optional: boolean): string {
  if (raw === undefined) return optional ? '—' : 'required';
  if (raw.startsWith('- ')) return raw.slice(2);
  return code(raw);
}

function typeText(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  const decl = symbol.declarations?.[0];
  if (decl && (ts.isPropertySignature(decl) || ts.isPropertyDeclaration(decl)) && decl.type)
    return decl.type.getText().replace(/\s+/g, ' ');
  return decl ? checker.typeToString(checker.getTypeOfSymbolAtLocation(symbol, decl)) : 'unknown';
}

function describeInterface(symbol: ts.Symbol, checker: ts.TypeChecker): Documented {
  const type = checker.getDeclaredTypeOfSymbol(symbol);
  const props = checker.getPropertiesOfType(type).map((prop) => {
    const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
    const see = tag(prop, checker, 'see');
    const summary = docOf(prop, checker);
    return [
      code(prop.name),
      code(typeText(prop, checker)),
      defaultText(tag(prop, checker, 'default'), optional),
      see ? `${summary} See ${see}.` : summary,
    ];
  });
  return { name: symbol.name, summary: docOf(symbol, checker), kind: 'interface', props };
}

/** Every interface and class `CONSTRUCTS_ENTRY` exports, with its documentation. */
export function constructDocs(root: string): Documented[] {
  const entry = join(root, CONSTRUCTS_ENTRY);
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  const moduleSymbol = file && checker.getSymbolAtLocation(file);
  if (!moduleSymbol) throw new Error(`gen-docs: cannot read ${CONSTRUCTS_ENTRY}`);
  const docs: Documented[] = [];
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (symbol.flags & ts.SymbolFlags.Interface) docs.push(describeInterface(symbol, checker));
    else if (symbol.flags & ts.SymbolFlags.Class)
      docs.push({ name: symbol.name, summary: docOf(symbol, checker), kind: 'class', props: [] });
  }
  return docs.sort((a, b) => a.name.localeCompare(b.name));
}

export function constructsPage(root: string, sections: ReadonlyMap<string, string>): string {
  const docs = constructDocs(root).map((d) => ({
    ...d,
    summary: linkSpec(d.summary, '../SPEC.md', sections),
    props: d.props.map((row) => row.map((c, i) => (i === 3 ? linkSpec(c, '../SPEC.md', sections) : c))),
  }));
  const classes = docs.filter((d) => d.kind === 'class');
  const interfaces = docs.filter((d) => d.kind === 'interface');
  const isProps = (d: Documented) => d.name.endsWith('Props');
  const ordered = [...interfaces.filter(isProps), ...interfaces.filter((d) => !isProps(d))];
  const firstSentence = (text: string) => (/^[\s\S]*?\.(\s|$)/.exec(text.split('\n\n')[0] ?? '')?.[0] ?? text).trim();
  return page(
    'Construct props',
    'The construct library (`sessionfleet`, `sessionfleet/kubernetes`, `sessionfleet/azure`): every exported class and the props and options it takes, from their TSDoc. Props are read-only; an optional prop without a default row is unset unless its description says otherwise. The `policy` prop is documented field by field in [policy fields](policy.md).',
    '## Classes',
    table(
      ['class', 'what it is'],
      classes.map((c) => [code(c.name), firstSentence(c.summary)]),
    ),
    '## Props and options',
    ordered.map((d) => `- [${d.name}](#${anchor(d.name)})`).join('\n'),
    ...ordered.flatMap((d) => [
      `### ${d.name}`,
      d.summary,
      d.props.length > 0 ? table(['prop', 'type', 'default', 'description'], d.props) : '',
    ]),
  );
}
