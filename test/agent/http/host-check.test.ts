import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../../agent/config.js';
import { hostRefusal, hostRules } from '../../../agent/http/host-check.js';

describe('DNS-rebinding protection (Host and Origin)', () => {
  const loopback = hostRules({ listenHost: '127.0.0.1' });

  it('on a loopback listen allows only loopback names, with any port, as Host and as Origin', () => {
    for (const host of ['localhost', 'localhost:8080', '127.0.0.1:3000', '[::1]:80', 'LOCALHOST'])
      expect(hostRefusal(loopback, host, undefined), host).toBeUndefined();
    for (const origin of ['http://localhost:5173', 'https://127.0.0.1', 'http://[::1]:8080'])
      expect(hostRefusal(loopback, 'localhost', origin), origin).toBeUndefined();

    const host = hostRefusal(loopback, 'evil.example:8080', undefined);
    expect(host?.code).toBe('HOST_FORBIDDEN');
    expect(host?.toHttpBody(404)).toEqual({
      error: {
        code: 'HOST_FORBIDDEN',
        status: 403,
        message:
          'the Host header "evil.example:8080" is not one this agent serves: use a host name this service is published under',
        host: 'evil.example:8080',
      },
    });
    expect(hostRefusal(loopback, undefined, undefined)?.code).toBe('HOST_FORBIDDEN');
    expect(hostRefusal(loopback, 'localhost.evil.example', undefined)?.code).toBe('HOST_FORBIDDEN');
    const origin = hostRefusal(loopback, 'localhost:8080', 'http://evil.example');
    expect(origin?.code).toBe('ORIGIN_FORBIDDEN');
    expect(origin?.status(404)).toBe(403);
    expect(hostRefusal(loopback, 'localhost', 'null')?.code).toBe('ORIGIN_FORBIDDEN');
  });

  it('on any other listen address allows any host and origin unless told', () => {
    const open = hostRules({ listenHost: '0.0.0.0' });
    expect(hostRefusal(open, 'anything.example', 'https://anywhere.example')).toBeUndefined();
  });

  it('takes the lists it is given: names, ports, subdomains, exact origins', () => {
    const rules = hostRules({
      listenHost: '0.0.0.0',
      allowedHosts: ['mcp.example.com', '*.tools.example.com', 'internal:8443'],
      allowedOrigins: ['https://app.example.com'],
    });
    for (const host of ['mcp.example.com', 'mcp.example.com:443', 'a.tools.example.com', 'internal:8443'])
      expect(hostRefusal(rules, host, undefined), host).toBeUndefined();
    for (const host of ['example.com', 'tools.example.com.evil', 'internal:8444', 'internal'])
      expect(hostRefusal(rules, host, undefined)?.code, host).toBe('HOST_FORBIDDEN');
    expect(hostRefusal(rules, 'mcp.example.com', 'https://app.example.com')).toBeUndefined();
    expect(hostRefusal(rules, 'mcp.example.com', 'http://app.example.com')?.code).toBe('ORIGIN_FORBIDDEN');
    // A client that is not a browser sends no Origin.
    expect(hostRefusal(rules, 'mcp.example.com', undefined)).toBeUndefined();
  });

  it('reads --allowed-hosts and --allowed-origins, and names a bad entry and the rule', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1'];
    const config = parseAgentConfig(
      [...base, '--allowed-hosts', 'a.example, *.b.example', '--allowed-origins', '*'],
      {},
    );
    expect(config.allowedHosts).toEqual(['a.example', '*.b.example']);
    expect(config.allowedOrigins).toEqual(['*']);
    expect(() => parseAgentConfig([...base, '--allowed-hosts', 'a.example,https://b'], {})).toThrow(
      '--allowed-hosts has "https://b": each entry must be a host name or address, optionally :port, *.domain, or *',
    );
    expect(() => parseAgentConfig(base, { SESSIONFLEET_ALLOWED_ORIGINS: 'app.example.com' })).toThrow(
      'SESSIONFLEET_ALLOWED_ORIGINS has "app.example.com": each entry must be scheme://host[:port] (http or https), or *',
    );
  });

  it('reads an origin one way in the flag and in the request: scheme://host[:port], any case, nothing after', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1', '--allowed-origins'];
    const given = 'HTTPS://App.Example.com:8443, http://[::1]';
    const config = parseAgentConfig([...base, given], {});
    const rules = hostRules({ listenHost: '0.0.0.0', allowedOrigins: config.allowedOrigins });
    for (const origin of ['https://app.example.com:8443', 'https://APP.example.com:8443', 'http://[::1]:3000'])
      expect(hostRefusal(rules, 'x', origin), origin).toBeUndefined();
    for (const origin of ['https://app.example.com', 'http://app.example.com:8443', 'https://app.example.com:8443/'])
      expect(hostRefusal(rules, 'x', origin)?.code, origin).toBe('ORIGIN_FORBIDDEN');
    for (const bad of ['https://app.example.com/', 'ftp://app.example.com', 'https://a b', 'https://a:123456'])
      expect(() => parseAgentConfig([...base, bad], {}), bad).toThrow(
        `--allowed-origins has ${JSON.stringify(bad)}: each entry must be scheme://host[:port] (http or https), or *`,
      );
  });
});
