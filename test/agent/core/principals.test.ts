import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPrincipals, Principals } from '../../../agent/core/principals.js';

const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-principals-'));

async function load(content: unknown): Promise<Principals> {
  const file = join(dir, `p-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return Principals.load(file);
}

async function loadError(content: unknown): Promise<string> {
  try {
    await load(content);
  } catch (error) {
    return (error as Error).message.replace(/^--principals \S+: /, '');
  }
  throw new Error('expected the file to be refused');
}

describe('the principals file', () => {
  it('maps a token to a principal name, or to a principal and its tenant', async () => {
    const principals = await load({
      'tok-alice-6f2c91': 'alice',
      'tok-bob-0d8e47': { principal: 'bob', tenant: 'acme' },
      'tok-carol-77aa01': { principal: 'carol' },
    });
    expect(principals.size).toBe(3);
    expect(principals.hasTenants).toBe(true);
    expect(principals.identify('tok-alice-6f2c91')).toEqual({ principal: 'alice' });
    expect(principals.identify('tok-bob-0d8e47')).toEqual({ principal: 'bob', tenant: 'acme' });
    expect(principals.identify('tok-carol-77aa01')).toEqual({ principal: 'carol' });
    expect(principals.identify('tok-nobody-000000')).toBeUndefined();
    for (const token of [undefined, 42, '', 'x'.repeat(4097)]) expect(principals.identify(token)).toBeUndefined();
  });

  it('has no tenants when no entry names one', async () => {
    expect((await load({ 'tok-alice-6f2c91': 'alice', 'tok-bob-0d8e47': { principal: 'bob' } })).hasTenants).toBe(
      false,
    );
  });

  it('names each bad entry by its position and the rule, every problem at once', async () => {
    expect(
      await loadError({
        'tok-a-123456': 'alice',
        short: 'bob',
        'tok-c-123456': 'carol smith',
        'tok-d-123456': { principal: 'dave', tenant: '' },
        'tok-e-123456': { tenant: 'acme' },
        'tok-f-123456': { principal: 'frank', tenant: 'acme', role: 'admin' },
        'tok-g-123456': ['grace'],
        'tok-h-123456': 7,
        'tok-i-123456': { principal: null, tenant: 'a b' },
      }),
    ).toBe(
      [
        'entry 2: its token has 5 characters, at least 8 are required',
        'entry 3: the principal must be a name of 1-256 characters without whitespace (it is a string of 11 characters with whitespace)',
        'entry 4: "tenant" must be a name of 1-256 characters without whitespace (it is a string of 0 characters)',
        'entry 5: "principal" is required',
        'entry 6: a field other than "principal" and "tenant"',
        'entry 7: must be a principal name or {"principal": ..., "tenant": ...} (it is an array)',
        'entry 8: must be a principal name or {"principal": ..., "tenant": ...} (it is a number)',
        'entry 9: "principal" must be a name of 1-256 characters without whitespace (it is null)',
        'entry 9: "tenant" must be a name of 1-256 characters without whitespace (it is a string of 3 characters with whitespace)',
      ].join('; '),
    );
  });

  it('never repeats a token, nor a rejected value that could be one (a file written the wrong way round)', async () => {
    const secret = 'tok-9b1e5c3a0f77d2e4';
    const message = await loadError({
      alice: `${secret} `,
      'tok-x-123456': { principal: 'bob', [secret]: 1, note: 2 },
      'tok-y-123456': { principal: secret.repeat(20) },
    });
    expect(message).not.toContain(secret);
    expect(message).toBe(
      [
        'entry 1: its token has 5 characters, at least 8 are required',
        'entry 1: the principal must be a name of 1-256 characters without whitespace (it is a string of 21 characters with whitespace)',
        'entry 2: 2 fields other than "principal" and "tenant"',
        'entry 3: "principal" must be a name of 1-256 characters without whitespace (it is a string of 400 characters)',
      ].join('; '),
    );
  });

  it('refuses a file that is not a JSON object', async () => {
    expect(await loadError('[]')).toBe(
      'must be a JSON object mapping each token to a principal name or to {"principal": ..., "tenant": ...}',
    );
    expect(await loadError('{')).toMatch(/^not valid JSON \(/);
    expect(checkPrincipals(null)).toHaveLength(1);
  });
});
