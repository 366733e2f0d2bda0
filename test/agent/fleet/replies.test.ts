import { describe, expect, it } from 'vitest';
import {
  decodeCancel,
  decodeEnd,
  decodeHeartbeat,
  decodeLockAcquire,
  decodeLockExtend,
  decodeOpen,
  decodePlace,
  decodeResolve,
  decodeResync,
  decodeSweep,
  ScriptReplyError,
} from '../../../agent/fleet/replies.js';

// The scripts' real replies are decoded by every fleet test against redis-server; these pin the
// layouts and show that a reply of the wrong shape is refused, naming the script, not misread.
describe('script reply decoders', () => {
  it('read each documented layout', () => {
    expect(decodeHeartbeat([-1, 1000, 2, 3, '99', 7, 'delta', 'a', 'http://a', 1, 'b', '', 0])).toEqual({
      previousDeadline: undefined,
      now: 1000,
      demand: 2,
      running: 3,
      epoch: '99',
      version: 7,
      mode: 'delta',
      members: [
        { id: 'a', address: 'http://a', gone: false },
        { id: 'b', address: '', gone: true },
      ],
    });
    expect(decodePlace(['placed', 'b', 'http://b'])).toEqual({ kind: 'placed', instanceId: 'b', address: 'http://b' });
    expect(decodePlace(['quota', 'tenant', 4])).toEqual({ kind: 'quota', quota: 'tenant', held: 4 });
    expect(decodePlace(['full', 1, 2, 3])).toEqual({ kind: 'full', canGrow: true, running: 2, demand: 3 });
    expect(decodePlace(['ended', 'no-such-reason'])).toEqual({ kind: 'ended', reason: 'deleted' });
    expect(decodeCancel(1)).toBe(true);
    expect(decodeOpen(['exists', 'a', '', 't'])).toEqual({ ok: false, owner: 'a', principal: undefined, tenant: 't' });
    expect(decodeEnd(['not-owner', ''])).toEqual({ kind: 'not-owner', owner: undefined });
    expect(decodeResolve('s', ['moved', 'b', 'http://b', '{"o":"b","p":"al","t":"","c":1,"e":2,"r":1}'])).toEqual({
      kind: 'moved',
      instanceId: 'b',
      address: 'http://b',
      record: { id: 's', owner: 'b', principal: 'al', tenant: undefined, createdAt: 1, expiresAt: 2, resumable: true },
    });
    expect(decodeResync([1, 2, 3, 'x', 'b'])).toEqual({
      registered: 1,
      kept: 2,
      released: 3,
      conflicts: [{ id: 'x', owner: 'b' }],
    });
    expect(decodeSweep([1, 2, 3, 4, 5, 6, 7])).toMatchObject({ reservationsReclaimed: 1, endedForgotten: 7 });
    expect(decodeLockAcquire([1, 42, 0])).toEqual({ granted: true, token: 42 });
    expect(decodeLockAcquire([0, -2, 3])).toEqual({ granted: false, remainingMs: -2, position: 3 });
    expect(decodeLockExtend(0)).toBe(false);
  });

  it('refuse a reply of the wrong shape with the script named', () => {
    expect(() => decodePlace(['maybe'])).toThrow(ScriptReplyError);
    expect(() => decodePlace(['maybe'])).toThrow(/^unexpected reply from sfPlace: unknown outcome/);
    expect(() => decodeHeartbeat([-1, 1000, 2, 1, '9', 1, 'full', 'a'])).toThrow(/sfHeartbeat: members come in threes/);
    expect(() => decodeHeartbeat([-1, 1000, 2, 1, '9', 1, 'some'])).toThrow(/sfHeartbeat: unknown mode/);
    expect(() => decodeResync([1, 2])).toThrow(/sfResync: expected an array of at least 3/);
    expect(() => decodeSweep([1, 2, 3, 4, 5, 6, 'x'])).toThrow(/sfSweep: expected a number/);
    expect(() => decodeEnd(['ok'])).toThrow(/sfEnd: unknown outcome/);
    expect(() => decodeLockAcquire([2, 1, 0])).toThrow(/sfLockAcquire: expected 0 or 1/);
    expect(() => decodeCancel('yes')).toThrow(/sfCancel: expected a number/);
  });
});
