import { describe, expect, it } from 'vitest';
import { MAX_SESSION_ID_LENGTH, OwnerHints, parseFleetKeys } from '../../../agent/fleet/owner-hint.js';

const key = (s: string) => Buffer.from(s.padEnd(32, '.'));

describe('owner hints', () => {
  const hints = new OwnerHints([key('current')]);

  it('mints unguessable ids that name their owner and fit a session id', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = hints.mint('agent-1.pod');
      expect(id).toMatch(/^agent-1\.pod~[A-Za-z0-9_-]{12}~[A-Za-z0-9_-]{22}$/);
      expect(id.length).toBeLessThanOrEqual(MAX_SESSION_ID_LENGTH);
      expect(hints.read(id)).toEqual({ instanceId: 'agent-1.pod', body: id.split('~')[2] });
      ids.add(id);
    }
    expect(ids.size).toBe(1000);
  });

  it("wraps an upstream's own session id, which may contain anything visible, and unwraps it", () => {
    const upstream = 'a~b~c-0f3e/=+?';
    const wrapped = hints.wrap('i-2', upstream)!;
    expect(hints.read(wrapped)).toEqual({ instanceId: 'i-2', body: upstream });
  });

  it('refuses forged, altered and foreign ids', () => {
    const id = hints.mint('i-1');
    const [, mac, body] = id.split('~');
    expect(hints.read(`i-2~${mac}~${body}`)).toBeUndefined(); // steer to another instance
    expect(hints.read(`i-1~${mac}~${body}x`)).toBeUndefined(); // another body
    expect(hints.read(`i-1~AAAAAAAAAAAA~${body}`)).toBeUndefined();
    expect(new OwnerHints([key('other fleet')]).read(id)).toBeUndefined();
    for (const junk of ['', '~', 'i-1', 'i-1~', `i-1~${mac}`, `i-1~${mac}~`, 'a b~x~y', '9f1c2e7a-uuid-v4']) {
      expect(hints.read(junk)).toBeUndefined();
    }
  });

  it('verifies with every key and signs with the first, so keys rotate without breaking sessions', () => {
    const before = new OwnerHints([key('old')]).mint('i-1');
    const rotated = new OwnerHints([key('new'), key('old')]);
    expect(rotated.read(before)?.instanceId).toBe('i-1');
    const after = rotated.mint('i-1');
    expect(new OwnerHints([key('old')]).read(after)).toBeUndefined();
    expect(new OwnerHints([key('new')]).read(after)?.instanceId).toBe('i-1');
  });

  it('falls back to a bare random id when the instance id is too long to fit', () => {
    const long = 'x'.repeat(110);
    const id = hints.mint(long);
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(hints.read(id)).toBeUndefined();
    expect(hints.wrap(long, 'upstream-id')).toBeUndefined();
  });

  it('parses SESSIONFLEET_FLEET_KEY and rejects short keys without echoing them', () => {
    expect(parseFleetKeys('0123456789abcdef, fedcba9876543210').map(String)).toEqual([
      '0123456789abcdef',
      'fedcba9876543210',
    ]);
    expect(() => parseFleetKeys('short-secret')).toThrow(
      'SESSIONFLEET_FLEET_KEY: key 1 has 12 characters; use at least 16',
    );
    expect(() => parseFleetKeys(' , ')).toThrow('SESSIONFLEET_FLEET_KEY is empty');
  });
});
