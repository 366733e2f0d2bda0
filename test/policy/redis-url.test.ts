import { describe, expect, it } from 'vitest';
import { parseRedisUrl, redactRedisUrl } from '../../policy/redis-url.js';

describe('parseRedisUrl', () => {
  it('takes one server as it is, with TLS and credentials', () => {
    expect(parseRedisUrl('redis://r:6379')).toEqual({
      endpoint: { kind: 'single', tls: false, url: 'redis://r:6379' },
    });
    expect(parseRedisUrl('rediss://fleet:s%40cret@r.example:6380/2')).toEqual({
      endpoint: {
        kind: 'single',
        tls: true,
        url: 'rediss://fleet:s%40cret@r.example:6380/2',
        username: 'fleet',
        password: 's@cret',
      },
    });
    expect(parseRedisUrl('redis://:only-password@r:6379')).toMatchObject({ endpoint: { password: 'only-password' } });
  });

  it('reads a Sentinel set: every sentinel, the primary name, the database and both sets of credentials', () => {
    expect(
      parseRedisUrl(
        'rediss-sentinel://app:pw@s1:26379,10.0.0.2:26379,[::1]:26380/mymaster/3?sentinelUsername=watch&sentinelPassword=spw',
      ),
    ).toEqual({
      endpoint: {
        kind: 'sentinel',
        tls: true,
        sentinels: [
          { host: 's1', port: 26379 },
          { host: '10.0.0.2', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        primaryName: 'mymaster',
        db: 3,
        username: 'app',
        password: 'pw',
        sentinelUsername: 'watch',
        sentinelPassword: 'spw',
      },
    });
  });

  it('reads a Cluster seed list', () => {
    expect(parseRedisUrl('redis-cluster://a:7000,b:7001')).toEqual({
      endpoint: {
        kind: 'cluster',
        tls: false,
        nodes: [
          { host: 'a', port: 7000 },
          { host: 'b', port: 7001 },
        ],
      },
    });
  });

  it.each([
    ['http://r', /^\(http:\/\/r\) must be one of redis:\/\/host:port, /],
    ['redis://a:1,b:2', /must name one host: use redis-sentinel:\/\/ or redis-cluster:\/\/ for several$/],
    ['redis-sentinel://s1:26379', /must end with \/<primary name>\[\/<db>\], the name the sentinels monitor$/],
    ['redis-sentinel://s1/mymaster', /"s1" must be host:port$/],
    ['redis-sentinel://s1:0/mymaster', /the port of "s1:0" must be 1–65535$/],
    ['redis-sentinel://s1:26379/mymaster/x', /the database \(x\) must be 0–99$/],
    ['redis-sentinel://s1:26379/m?password=x', /unknown parameter "password" \(sentinelUsername, sentinelPassword\)$/],
    ['redis-cluster://a:7000/1', /must have no path: a Redis Cluster has one database/],
    [
      'redis-cluster://u:p@ss@a:7000',
      /^\(redis-cluster:\/\/u:\*\*\*@a:7000\) must have an '@' in its user name or password encoded as %40$/,
    ],
  ])('refuses %s naming the part and the rule', (url, message) => {
    const result = parseRedisUrl(url);
    expect('problem' in result && result.problem).toMatch(message);
  });

  it('never shows a password in a problem', () => {
    const result = parseRedisUrl('redis-sentinel://u:topsecret@s1/m?sentinelPassword=alsosecret');
    expect('problem' in result && result.problem).not.toMatch(/secret/);
    expect(redactRedisUrl('rediss://u:topsecret@r:1')).toBe('rediss://u:***@r:1');
  });

  it.each([
    // A user name with no colon is taken as the password (as redis://:secret@ is).
    ['redis://topsecret@a:1,b:2', 'redis://***@a:1,b:2'],
    ['redis://:topsecret@a:1,b:2', 'redis://:***@a:1,b:2'],
    // Unencoded, so the URL does not parse: hidden all the same.
    ['redis-sentinel://u:top/secret@s1/m', 'redis-sentinel://u:***@s1/m'],
    ['redis-cluster://u:top@secret@a:1/x', 'redis-cluster://u:***@a:1/x'],
    ['redis://u:top?secret@a:1,b:2', 'redis://u:***@a:1,b:2'],
    ['  redis://u:topsecret@a:1,b:2', '  redis://u:***@a:1,b:2'],
  ])('hides the password of %s in the problem', (url, shown) => {
    expect(redactRedisUrl(url)).toBe(shown);
    const result = parseRedisUrl(url);
    expect('problem' in result && result.problem).toContain(`(${shown})`);
    expect('problem' in result && result.problem).not.toMatch(/secret/);
  });
});
