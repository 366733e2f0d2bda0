import { describe, expect, it } from 'vitest';
import { ConfigError, envName, parseAgentConfig, parseHostPort } from '../../agent/config.js';

describe('agent flags', () => {
  it('maps each flag to its SESSIONFLEET_ variable', () => {
    expect(envName('admin-listen')).toBe('SESSIONFLEET_ADMIN_LISTEN');
    expect(envName('upstream-token')).toBe('SESSIONFLEET_UPSTREAM_TOKEN');
  });

  it('reads flags, falls back to the environment, and the command line wins', () => {
    const config = parseAgentConfig(
      ['--policy', 'p.json', '--upstream', 'http://127.0.0.1:3000', '--listen', '127.0.0.1:8081'],
      {
        SESSIONFLEET_ADMIN_LISTEN: '127.0.0.1:9191',
        SESSIONFLEET_LISTEN: '0.0.0.0:1',
        SESSIONFLEET_REDIS: 'redis://r:6379',
      },
      { hostname: 'pod-1' },
    );
    expect(config).toMatchObject({
      policyFile: 'p.json',
      listen: { host: '127.0.0.1', port: 8081 },
      adminListen: { host: '127.0.0.1', port: 9191 },
      redisUrl: 'redis://r:6379',
      instanceId: 'pod-1',
    });
    expect(config.upstream.href).toBe('http://127.0.0.1:3000/');
    expect(config.advertise.href).toBe('http://127.0.0.1:8081/');
  });

  it('advertises the first non-loopback IPv4 address when listening on all interfaces', () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { address: 'fe80::1', family: 'IPv6', internal: false },
        { address: '10.1.2.3', family: 'IPv4', internal: false },
      ],
    } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
    const config = parseAgentConfig(['--policy', 'p', '--upstream', 'http://127.0.0.1:1'], {}, { interfaces });
    expect(config.advertise.href).toBe('http://10.1.2.3:8080/');
    expect(config.advertiseExplicit).toBe(false);
    const explicit = parseAgentConfig(
      ['--policy', 'p', '--upstream', 'http://127.0.0.1:1', '--advertise', 'http://pod.svc:8080'],
      {},
      { interfaces },
    );
    expect(explicit.advertise.href).toBe('http://pod.svc:8080/');
    expect(explicit.advertiseExplicit).toBe(true);
  });

  it('parses host:port forms', () => {
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort(':80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseHostPort('localhost:70000')).toBeUndefined();
    expect(parseHostPort('localhost')).toBeUndefined();
  });

  it('reports every problem at once, naming flag, value and rule', () => {
    let error: unknown;
    try {
      parseAgentConfig(
        ['--upstream', 'ftp://x:1', '--listen', '127.0.0.1:9090', '--redis', 'http://r', '--log-level', 'loud'],
        {},
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      '--policy is required (or set SESSIONFLEET_POLICY)',
      '--upstream ("ftp://x:1") must be http://host:port or tcp://host:port (with an explicit port)',
      '--admin-listen (127.0.0.1:9090) must not be the client port (--listen 127.0.0.1:9090)',
      '--redis must be a redis:// or rediss:// URL',
      '--log-level ("loud") must be one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });

  it('rejects unknown flags clearly', () => {
    expect(() => parseAgentConfig(['--polcy', 'x'], {})).toThrowError(ConfigError);
  });
});
