/**
 * Client tokens → principals (users), from the `--principals` JSON file. Each entry maps a token
 * to a principal name (`{"tok-a": "alice"}`) or to a principal and its tenant
 * (`{"tok-a": {"principal": "alice", "tenant": "acme"}}`); a principal without a tenant of its own
 * belongs to the instance's `--tenant`. Tokens are compared by their SHA-256 digest, so lookup
 * time does not depend on how much of a guessed token matches. Tokens are secrets: no message
 * ever repeats one (entries are named by their position, rejected values are only described).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isName, NAME_RULE } from './tenancy.js';

/** Who a token belongs to. */
export interface Identity {
  readonly principal: string;
  /** The principal's own tenant, if the file names one. */
  readonly tenant?: string | undefined;
}

/** One entry's value in the principals file. */
export type PrincipalEntry = string | { principal: string; tenant?: string };

const ENTRY_FIELDS = ['principal', 'tenant'];

export class Principals {
  private readonly byDigest: Map<string, Identity>;
  /** Whether any entry names a tenant. */
  readonly hasTenants: boolean;

  constructor(tokens: Record<string, PrincipalEntry>) {
    this.byDigest = new Map(
      Object.entries(tokens).map(([token, entry]) => [
        digest(token),
        typeof entry === 'string'
          ? { principal: entry }
          : { principal: entry.principal, ...(entry.tenant !== undefined ? { tenant: entry.tenant } : {}) },
      ]),
    );
    this.hasTenants = [...this.byDigest.values()].some((identity) => identity.tenant !== undefined);
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The principal (and its own tenant) a token belongs to, or undefined. */
  identify(token: unknown): Identity | undefined {
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) return undefined;
    return this.byDigest.get(digest(token));
  }

  /** Reads and validates a principals file; errors name the file and the offending entry. */
  static async load(file: string): Promise<Principals> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new Error(
        `--principals ${file}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new Error(
        `--principals ${file}: not valid JSON (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    const problems = checkPrincipals(value);
    if (problems.length > 0) throw new Error(`--principals ${file}: ${problems.join('; ')}`);
    return new Principals(value as Record<string, PrincipalEntry>);
  }
}

/**
 * Every problem of a parsed principals file. An entry is named by its position (1-based, in the
 * order of the parsed object), never by its token.
 */
export function checkPrincipals(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return ['must be a JSON object mapping each token to a principal name or to {"principal": ..., "tenant": ...}'];
  }
  const problems: string[] = [];
  Object.entries(value).forEach(([token, entry], index) => {
    // By position only: in a file written the wrong way round the "principal" is a token.
    const name = `entry ${index + 1}`;
    if (token.length < 8) problems.push(`${name}: its token has ${token.length} characters, at least 8 are required`);
    if (typeof entry === 'string') {
      if (!isName(entry)) problems.push(`${name}: the principal must be ${NAME_RULE} (it is ${describe(entry)})`);
      return;
    }
    if (!isPlainObject(entry)) {
      problems.push(
        `${name}: must be a principal name or {"principal": ..., "tenant": ...} (it is ${describe(entry)})`,
      );
      return;
    }
    const fields = entry as Record<string, unknown>;
    if (!('principal' in fields)) problems.push(`${name}: "principal" is required`);
    else if (!isName(fields.principal))
      problems.push(`${name}: "principal" must be ${NAME_RULE} (it is ${describe(fields.principal)})`);
    if ('tenant' in fields && !isName(fields.tenant))
      problems.push(`${name}: "tenant" must be ${NAME_RULE} (it is ${describe(fields.tenant)})`);
    const unknown = Object.keys(fields).filter((key) => !ENTRY_FIELDS.includes(key)).length;
    // Not named either: only the values of "principal" and "tenant" are known not to be secrets.
    if (unknown > 0)
      problems.push(`${name}: ${unknown === 1 ? 'a field' : `${unknown} fields`} other than "principal" and "tenant"`);
  });
  return problems;
}

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What a rejected value is, without repeating it: a misplaced token (a file written the wrong
 * way round) must not reach a log.
 */
function describe(value: unknown): string {
  if (typeof value === 'string') {
    return `a string of ${value.length} character${value.length === 1 ? '' : 's'}${/\s/.test(value) ? ' with whitespace' : ''}`;
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}
