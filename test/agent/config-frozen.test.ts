/**
 * The configuration is parsed once and never changes after: every part of the agent reads the
 * same deep-frozen object, whose advertised address is resolved before the agent starts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig, resolveAgentConfig } from '../../agent/config.js';
import { createLogger } from '../../agent/core/logger.js';
import { startAgent } from '../../agent/server.js';

const base = ['--policy', 'p.json', '--upstream', 'http://127.0.0.1:3000', '--admin-listen', '127.0.0.1:0'];

describe('agent configuration', () => {
  it('is deep-frozen once parsed, URLs included', () => {
    const config = parseAgentConfig([...base, '--listen', '127.0.0.1:0', '--fleet', 'f'], {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(Object.isFrozen(config.warnings)).toBe(true);
    const writable = config as unknown as Record<string, unknown> & { listen: { port: number }; warnings: string[] };
    expect(() => {
      writable.instanceId = 'other';
    }).toThrowError(TypeError);
    expect(() => {
      writable.listen.port = 1;
    }).toThrowError(TypeError);
    expect(() => writable.warnings.push('more')).toThrowError(TypeError);
    expect(() => {
      config.advertise.port = '1';
    }).toThrowError("Cannot assign to read only property 'port' of a frozen URL");
    expect(() => {
      config.upstream.href = 'http://elsewhere:1/';
    }).toThrowError(TypeError);
    config.upstream.searchParams.set('changed', '1');
    expect(config.upstream.href).toBe('http://127.0.0.1:3000/');
    expect(config.advertise.href).toBe('http://127.0.0.1:0/');
    expect(config.upstream).toBeInstanceOf(URL);
  });

  it('resolves --listen port 0 and the derived advertised address before the agent starts', async () => {
    const config = parseAgentConfig([...base, '--listen', '127.0.0.1:0'], {});
    const resolved = await resolveAgentConfig(config, async () => 24_567);
    expect(resolved.listen).toEqual({ host: '127.0.0.1', port: 24_567 });
    expect(resolved.advertise.href).toBe('http://127.0.0.1:24567/');
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(() => {
      resolved.advertise.port = '1';
    }).toThrowError(TypeError);
    // The parsed object itself is left as it was: nothing ever changes a configuration.
    expect(config.listen.port).toBe(0);

    const explicit = parseAgentConfig([...base, '--listen', '127.0.0.1:0', '--advertise', 'http://pod.svc:8080'], {});
    const kept = await resolveAgentConfig(explicit, async () => 24_568);
    expect(kept.listen.port).toBe(24_568);
    expect(kept.advertise.href).toBe('http://pod.svc:8080/');

    const fixed = parseAgentConfig([...base, '--listen', '127.0.0.1:24569'], {});
    const same = await resolveAgentConfig(fixed, async () => {
      throw new Error('a fixed port needs no reservation');
    });
    expect(same).toEqual(fixed);
  });

  it('runs a started agent on a frozen configuration that advertises the port it listens on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-frozen-'));
    const policyFile = join(dir, 'policy.json');
    writeFileSync(policyFile, JSON.stringify({ affinity: { type: 'cookie' } }));
    const config = parseAgentConfig(
      [
        '--policy',
        policyFile,
        '--upstream',
        'http://127.0.0.1:9',
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        '127.0.0.1:0',
        '--admin-token',
        'admin-secret',
      ],
      {},
    );
    const agent = await startAgent(config, { logger: createLogger({ level: 'silent', instanceId: 'frozen' }) });
    try {
      const running = agent.context.config;
      expect(Object.isFrozen(running)).toBe(true);
      expect(running.listen.port).toBe(agent.client.port);
      expect(running.advertise.href).toBe(`http://127.0.0.1:${agent.client.port}/`);
      // What the fleet is told (the inventory, the heartbeat) is that same address.
      const response = await fetch(`http://127.0.0.1:${agent.admin.port}/admin/fleet/instances`, {
        headers: { authorization: 'Bearer admin-secret' },
      });
      const body = (await response.json()) as { instances: Array<{ advertise: string }> };
      expect(body.instances.map((i) => i.advertise)).toEqual([`http://127.0.0.1:${agent.client.port}/`]);
    } finally {
      await agent.shutdown('test over');
    }
  });
});
