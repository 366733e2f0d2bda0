/**
 * The policy reference page and the TSDoc'd `PolicyInput` type, both from the JSON Schema that zod
 * derives from `policy/schema.ts` (the same schema the validator runs and editors load), plus the
 * rule catalogue for the rules between fields. One walk over the schema feeds both outputs, so the
 * page, the editor hover and the published schema say the same thing.
 */
import { z } from 'zod';
import { RESERVED_HEADER_NAMES } from '../../policy/schema.js';
import { code, page, table } from './markdown.js';
import { CROSS_FIELD_RULES, policyInputSchema, UNSET_MEANS } from './sources.js';

interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: readonly unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  properties?: Record<string, JsonSchema>;
  required?: readonly string[];
  oneOf?: readonly JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
}

/** One documented field, whichever output it goes to. */
export interface PolicyField {
  /** Dotted path: `sessionsPerInstance`, `affinity.headerName`, `collaborative.lockTtlSeconds`. */
  readonly path: string;
  readonly schema: JsonSchema;
  readonly required: boolean;
  /** For an affinity setting: the `affinity.type` values it belongs to. */
  readonly onlyFor?: string;
}

export function policySchema(): JsonSchema {
  return z.toJSONSchema(policyInputSchema, { io: 'input', target: 'draft-2020-12' }) as JsonSchema;
}

function tsType(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.type === 'integer' || schema.type === 'number') return 'number';
  if (schema.type === 'string' || schema.type === 'boolean') return schema.type;
  if (schema.type === 'object' && typeof schema.additionalProperties === 'object')
    return `Readonly<Record<string, ${tsType(schema.additionalProperties)}>>`;
  throw new Error(`gen-docs: no TypeScript type for schema ${JSON.stringify(schema)}`);
}

function typeText(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return 'one of';
  if (schema.type === 'integer') return 'whole number';
  if (schema.oneOf) return 'object';
  return schema.type ?? 'any';
}

export function rangeText(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(', ');
  const parts: string[] = [];
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${schema.minimum}–${schema.maximum}`);
  else if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  else if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined && schema.maxLength !== undefined)
    parts.push(`${schema.minLength}–${schema.maxLength} characters`);
  else if (schema.maxLength !== undefined) parts.push(`at most ${schema.maxLength} characters`);
  if (schema.pattern) parts.push(`matching /${schema.pattern}/`);
  return parts.join(', ');
}

export function defaultText(field: PolicyField): string {
  if (field.schema.default !== undefined) return JSON.stringify(field.schema.default);
  if (field.required) return field.onlyFor ? `required for ${field.onlyFor}` : 'required';
  return `unset: ${UNSET_MEANS[field.path] ?? 'not used'}`;
}

/** The rules a field must meet beyond its type and range: checks zod runs in code, and the cross-field rules. */
export function rulesText(field: PolicyField): string[] {
  const rules: string[] = [];
  if (field.path === 'affinity.headerName')
    rules.push(`not a header the agent or HTTP itself uses (${RESERVED_HEADER_NAMES.join(', ')})`);
  for (const rule of CROSS_FIELD_RULES) if (rule.fields.includes(field.path)) rules.push(rule.rule);
  return rules;
}

const AFFINITY_NAMES: Readonly<Record<string, string>> = {
  'mcp-streamable-http': 'McpStreamableHttpAffinity',
  'mcp-sse': 'McpSseAffinity',
  header: 'HeaderAffinity',
  cookie: 'CookieAffinity',
  'copilot-jsonrpc': 'CopilotJsonRpcAffinity',
  none: 'NoAffinity',
};

function affinityName(type: string): string {
  const name = AFFINITY_NAMES[type];
  if (!name)
    throw new Error(`gen-docs: no interface name for affinity type ${JSON.stringify(type)}; add it to AFFINITY_NAMES`);
  return name;
}

/** Every documented field in schema order, affinity settings and collaborative settings expanded. */
export function policyFields(schema: JsonSchema = policySchema()): PolicyField[] {
  const fields: PolicyField[] = [];
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    if (name === '$schema') continue;
    const required = schema.required?.includes(name) ?? false;
    if (prop.oneOf) {
      const types = prop.oneOf.map((v) => String(v.properties?.type?.const));
      fields.push({
        path: `${name}.type`,
        required,
        schema: { enum: types, description: prop.description ?? '' },
      });
      const settings = new Map<string, { schema: JsonSchema; types: string[]; required: boolean }>();
      for (const variant of prop.oneOf) {
        for (const [key, sub] of Object.entries(variant.properties ?? {})) {
          if (key === 'type') continue;
          const entry = settings.get(key) ?? { schema: sub, types: [], required: false };
          entry.types.push(String(variant.properties?.type?.const));
          entry.required ||= variant.required?.includes(key) ?? false;
          settings.set(key, entry);
        }
      }
      for (const [key, s] of settings)
        fields.push({
          path: `${name}.${key}`,
          schema: s.schema,
          required: s.required,
          onlyFor: s.types.map((t) => JSON.stringify(t)).join(', '),
        });
    } else if (prop.properties) {
      fields.push({ path: name, required, schema: { ...prop, type: 'object' } });
      for (const [key, sub] of Object.entries(prop.properties))
        fields.push({ path: `${name}.${key}`, schema: sub, required: prop.required?.includes(key) ?? false });
    } else {
      fields.push({ path: name, required, schema: prop });
    }
  }
  return fields;
}

/** Rewrites "SPEC.md §N" into a link to that section of docs/SPEC.md, relative to `specPath`. */
export function linkSpec(text: string, specHref: string, sections: ReadonlyMap<string, string>): string {
  return text.replace(/SPEC\.md §(\d+)/g, (whole, n: string) => {
    const slug = sections.get(n);
    return slug ? `[SPEC §${n}](${specHref}#${slug})` : whole;
  });
}

export function policyPage(sections: ReadonlyMap<string, string>): string {
  const schema = policySchema();
  const fields = policyFields(schema);
  const rows = fields.map((f) => [
    code(f.path),
    typeText(f.schema),
    defaultText(f),
    rangeText(f.schema),
    [
      linkSpec(f.schema.description ?? '', '../SPEC.md', sections),
      f.onlyFor ? `Only with affinity.type ${f.onlyFor}.` : '',
    ]
      .filter(Boolean)
      .join(' '),
    rulesText(f).join('; '),
  ]);
  return page(
    'Policy fields',
    'The policy file is JSON: the agent reads it with `--policy`, the constructs take it as their `policy` prop and write it for their agents. Only `affinity` is required. The same definitions give the JSON Schema `schema/policy.schema.json` (exported as `sessionfleet/policy.schema.json`; point an editor at it with `"$schema"`) and the TSDoc of the `PolicyInput` type that editors show on hover.',
    '`sessionfleet-agent check-policy <file>` prints a policy with every default filled in, or every violation, each naming the field, the value and the rule.',
    table(['field', 'type', 'default', 'range / values', 'meaning', 'rules'], rows),
    '## Rules between fields',
    'Each rule is checked at synth time by the constructs and again at agent start; a violation is an error naming the field.',
    table(
      ['fields', 'rule'],
      CROSS_FIELD_RULES.map((r) => [r.fields.map(code).join(', '), r.rule]),
    ),
  );
}

/** The policy's nested objects and the interface each one is generated as. */
const NESTED_INTERFACES: Readonly<Record<string, string>> = {
  collaborative: 'CollaborativeInput',
  limits: 'LimitsInput',
};

/** A TSDoc block at `indent`, one line per paragraph part. */
function tsdoc(lines: readonly string[], indent: string): string {
  const body = lines.flatMap((l) => l.split('\n')).map((l) => (l === '' ? `${indent} *` : `${indent} * ${l}`));
  return `${indent}/**\n${body.join('\n')}\n${indent} */`;
}

function fieldDoc(field: PolicyField): string[] {
  const lines = [(field.schema.description ?? '').replace(/\*\//g, '*\\/')];
  const range = rangeText(field.schema);
  if (range && !field.schema.enum)
    lines.push('', `Range: ${range}${field.schema.type === 'integer' ? ', whole number' : ''}.`);
  const rules = rulesText(field);
  if (rules.length > 0) lines.push('', `Rule: ${rules.join('; ')}.`);
  if (field.schema.default !== undefined) lines.push(`@default ${JSON.stringify(field.schema.default)}`);
  else if (!field.required) lines.push(`@default - ${UNSET_MEANS[field.path] ?? 'not used'}`);
  return lines;
}

function member(name: string, field: PolicyField, type: string): string {
  const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
  return `${tsdoc(fieldDoc(field), '  ')}\n  readonly ${key}${field.required ? '' : '?'}: ${type};`;
}

/** `policy/policy-input.ts`: the policy as users write it, with TSDoc on every field. */
export function policyInputSource(): string {
  const schema = policySchema();
  const fields = policyFields(schema);
  const byPath = new Map(fields.map((f) => [f.path, f]));
  const out: string[] = [
    '// Generated by `npm run docs` (scripts/docs/policy.ts) from the zod schema in policy/schema.ts, the',
    '// same source as schema/policy.schema.json; do not edit. test/policy/policy-input.test.ts checks it',
    '// against the schema, and `npm run docs:check` fails when it is stale.',
    '',
  ];
  const affinity = schema.properties?.affinity;
  const variants: string[] = [];
  for (const variant of affinity?.oneOf ?? []) {
    const type = String(variant.properties?.type?.const);
    const name = affinityName(type);
    variants.push(name);
    const members = [`  /** Affinity type ${JSON.stringify(type)}. */\n  readonly type: ${JSON.stringify(type)};`];
    for (const key of Object.keys(variant.properties ?? {})) {
      if (key === 'type') continue;
      const field = byPath.get(`affinity.${key}`);
      if (!field) continue;
      const required = variant.required?.includes(key) ?? false;
      members.push(member(key, { ...field, required }, tsType(field.schema)));
    }
    out.push(
      `/** \`affinity\` of type ${JSON.stringify(type)}. */`,
      `export interface ${name} {`,
      members.join('\n'),
      '}',
      '',
    );
  }
  out.push(
    tsdoc([affinity?.description ?? '', '', 'Discriminated by `type`; each type accepts only its own settings.'], ''),
    `export type AffinityInput = ${variants.join(' | ')};`,
    '',
  );
  for (const [name, typeName] of Object.entries(NESTED_INTERFACES)) {
    const nested = schema.properties?.[name];
    const nestedMembers = Object.keys(nested?.properties ?? {}).map((key) => {
      const field = byPath.get(`${name}.${key}`)!;
      return member(key, field, tsType(field.schema));
    });
    out.push(
      tsdoc([nested?.description ?? ''], ''),
      `export interface ${typeName} {`,
      nestedMembers.join('\n'),
      '}',
      '',
    );
  }
  const members: string[] = [];
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    if (name === '$schema') {
      members.push(`  /** ${prop.description} */\n  readonly $schema?: string;`);
      continue;
    }
    const field = byPath.get(prop.oneOf ? `${name}.type` : name)!;
    const type = prop.oneOf ? 'AffinityInput' : (NESTED_INTERFACES[name] ?? tsType(prop));
    const doc = prop.oneOf ? { ...field, schema: { description: prop.description ?? '' } } : field;
    members.push(member(name, doc, type));
  }
  out.push(
    tsdoc(
      [
        schema.description ?? '',
        '',
        'The policy file as users write it (JSON), and the `policy` prop of the constructs. Every field but',
        '`affinity` has a default; `check-policy` prints the policy with all of them filled in.',
      ],
      '',
    ),
    'export interface PolicyInput {',
    members.join('\n'),
    '}',
  );
  return `${out.join('\n')}\n`;
}
