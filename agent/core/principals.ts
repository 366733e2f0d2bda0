/**
 * Client tokens → principals (users), from the `--principals` JSON file (`{"tok-a": "alice"}`).
 * Tokens are compared by their SHA-256 digest, so lookup time does not depend on how much of a
 * guessed token matches.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export class Principals {
  private readonly byDigest: Map<string, string>;

  constructor(tokens: Record<string, string>) {
    this.byDigest = new Map(Object.entries(tokens).map(([token, principal]) => [digest(token), principal]));
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The principal a token belongs to, or undefined. */
  resolve(token: unknown): string | undefined {
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
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error(`--principals ${file}: must be a JSON object mapping each token to a principal name`);
    }
    const problems: string[] = [];
    for (const [token, principal] of Object.entries(value)) {
      if (token.length < 8) problems.push(`a token of ${token.length} characters is too short (at least 8)`);
      if (typeof principal !== 'string' || !/^[^\s]{1,256}$/.test(principal)) {
        problems.push(
          `the principal of a token must be a name of 1-256 non-space characters, not ${JSON.stringify(principal)}`,
        );
      }
    }
    if (problems.length > 0) throw new Error(`--principals ${file}: ${problems.join('; ')}`);
    return new Principals(value as Record<string, string>);
  }
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}
