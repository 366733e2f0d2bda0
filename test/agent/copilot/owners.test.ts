import { describe, expect, it } from 'vitest';
import { OwnerDirectory, type Ownership } from '../../../agent/copilot/owners.js';

/** A directory over an in-memory "CLI" that records every read. */
function directory(persisted: Record<string, Ownership>, maxCached?: number) {
  const reads: string[][] = [];
  const owners = new OwnerDirectory(async (ids) => {
    reads.push([...ids]);
    return new Map(ids.filter((id) => persisted[id]).map((id) => [id, persisted[id]!]));
  }, maxCached);
  return { owners, reads };
}

describe('OwnerDirectory', () => {
  it('answers bound sessions from its cache and reads the others once', async () => {
    const { owners, reads } = directory({ old: { state: 'owned', owner: { principal: 'alice', tenant: 'acme' } } });
    owners.bind('new', { principal: 'bob', tenant: 'acme' });
    expect(await owners.resolve('new')).toEqual({ state: 'owned', owner: { principal: 'bob', tenant: 'acme' } });
    expect(reads).toEqual([]);
    expect(await owners.resolve('old')).toEqual({ state: 'owned', owner: { principal: 'alice', tenant: 'acme' } });
    expect(await owners.resolve('old')).toEqual({ state: 'owned', owner: { principal: 'alice', tenant: 'acme' } });
    expect(reads).toEqual([['old']]);
    expect(owners.known('old')).toEqual({ principal: 'alice', tenant: 'acme' });
  });

  it('never caches an absent or unowned session: it may be created later', async () => {
    const { owners, reads } = directory({ foreign: { state: 'unowned' } });
    expect(await owners.resolve('missing')).toEqual({ state: 'absent' });
    expect(await owners.resolve('foreign')).toEqual({ state: 'unowned' });
    expect(await owners.resolve('missing')).toEqual({ state: 'absent' });
    expect(reads).toEqual([['missing'], ['foreign'], ['missing']]);
  });

  it('reads many sessions in batches of 1000, without duplicates', async () => {
    const persisted = Object.fromEntries(
      Array.from({ length: 2500 }, (_, i) => [
        `s${i}`,
        { state: 'owned', owner: { principal: i % 2 ? 'a' : 'b', tenant: undefined } } as Ownership,
      ]),
    );
    const { owners, reads } = directory(persisted);
    const ids = [...Object.keys(persisted), 's0', 's1'];
    const found = await owners.resolveMany(ids);
    expect(reads.map((r) => r.length)).toEqual([1000, 1000, 500]);
    expect(found.size).toBe(2500);
    expect(found.get('s3')).toEqual({ state: 'owned', owner: { principal: 'a', tenant: undefined } });
  });

  it('keeps at most maxCached bindings, dropping the least recently bound', () => {
    const { owners } = directory({}, 2);
    const x = { principal: 'x', tenant: undefined };
    owners.bind('a', x);
    owners.bind('b', x);
    owners.bind('a', x);
    owners.bind('c', x);
    expect([owners.known('a'), owners.known('b'), owners.known('c')]).toEqual([x, undefined, x]);
    owners.forget('a');
    expect(owners.cachedCount).toBe(1);
  });
});
