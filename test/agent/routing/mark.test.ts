import { describe, expect, it } from 'vitest';
import { OwnerHints } from '../../../agent/fleet/owner-hint.js';
import { FORWARD_MARK_MAX_AGE_MS, signForwardMark, verifyForwardMark } from '../../../agent/routing/mark.js';

const hints = new OwnerHints([Buffer.from('fleet-key-0123456789abcdef')]);
const other = new OwnerHints([Buffer.from('another-key-0123456789abcdef')]);
const NOW = 1_700_000_000_000;

describe('the HTTP forwarding mark', () => {
  it('names the forwarding instance and the reservation, for the instance it is addressed to', () => {
    const mark = signForwardMark(hints, 'a', 'b', 'res-1', NOW);
    expect(verifyForwardMark(hints, 'b', mark, NOW + 1000)).toEqual({
      ok: true,
      mark: { from: 'a', reservation: 'res-1' },
    });
    expect(verifyForwardMark(hints, 'b', signForwardMark(hints, 'a', 'b', undefined, NOW), NOW)).toEqual({
      ok: true,
      mark: { from: 'a', reservation: undefined },
    });
  });

  it('refuses a mark for another instance, an old one, a forged or tampered one, and garbage', () => {
    const mark = signForwardMark(hints, 'a', 'b', 'res-1', NOW);
    expect(verifyForwardMark(hints, 'c', mark, NOW)).toEqual({
      ok: false,
      reason: 'forwarding mark addressed to another instance',
    });
    expect(verifyForwardMark(hints, 'b', mark, NOW + FORWARD_MARK_MAX_AGE_MS + 1)).toEqual({
      ok: false,
      reason: 'forwarding mark expired',
    });
    expect(verifyForwardMark(hints, 'b', signForwardMark(other, 'a', 'b', 'res-1', NOW), NOW)).toEqual({
      ok: false,
      reason: 'forwarding mark with a bad signature',
    });
    expect(verifyForwardMark(hints, 'b', mark.replace('res-1', 'res-2'), NOW)).toEqual({
      ok: false,
      reason: 'forwarding mark with a bad signature',
    });
    for (const bad of ['', 'v1 a b', 'v2 a b 1 - x', ['v1', 'x'], undefined]) {
      expect(verifyForwardMark(hints, 'b', bad, NOW)).toEqual({ ok: false, reason: 'malformed forwarding mark' });
    }
    expect(verifyForwardMark(undefined, 'b', mark, NOW)).toEqual({
      ok: false,
      reason: 'this agent has no fleet key yet',
    });
  });
});
