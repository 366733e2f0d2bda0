/**
 * The in-cluster Redis's container command, taken from the synthesized JSON and run with a real
 * redis-server: the password from the environment (the Secret) is required, the settings hold, and
 * the URL the agents build from the same Secret works with ioredis (the agent's client).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesFleetRedis, KubernetesSessionFleet } from '../../constructs/index.js';
import { AGENT_ENV } from '../../policy/agent-interface.js';
import { freePort, redisServerBinary } from '../helpers/redis-server.js';
import { container, envOf, type Json, named, nameRef, synth } from './kubernetes-test-helpers.js';

const PASSWORD = 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6';

describe('the in-cluster Redis, run as synthesized', () => {
  const s = synth((scope) => {
    new KubernetesSessionFleet(scope, 'Fleet', {
      policy: { affinity: { type: 'mcp-streamable-http' } },
      app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
      redis: KubernetesFleetRedis.inCluster({ memoryMiB: 64 }),
    });
  });
  const redisContainer: Json = container(named(s, 'kubernetes_deployment_v1', 'fleet-redis'), 'redis');
  const agentEnv = envOf(container(named(s, 'kubernetes_deployment_v1', 'fleet'), 'agent'));
  let server: ChildProcess;
  let port: number;
  const clients: Redis[] = [];

  beforeAll(async () => {
    redisServerBinary(); // a clear message when redis-server is missing
    port = await freePort();
    const [command, ...rest] = redisContainer.command as string[];
    // Later options win in redis-server: keep the test's server on loopback and a free port.
    const args = [...rest, ...(redisContainer.args as string[]), '--port', String(port), '--bind', '127.0.0.1'];
    server = spawn(command!, args, {
      cwd: mkdtempSync(join(tmpdir(), 'sessionfleet-k8s-redis-')),
      env: { ...process.env, REDIS_PASSWORD: PASSWORD },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const deadline = Date.now() + 10_000;
    while (!(await rawCommand(port, 'PING').catch(() => undefined))) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    server?.kill('SIGTERM');
  });

  it('refuses clients without the password', async () => {
    expect(await rawCommand(port, 'PING')).toBe('-NOAUTH Authentication required.');
  });

  it('serves the agents at the URL they build from the same Secret', async () => {
    const template = agentEnv[AGENT_ENV.redis] as string;
    // The host is a reference to the Redis Service's name, which Terraform resolves to fleet-redis.
    const service = nameRef(s, 'kubernetes_service_v1', 'fleet-redis');
    expect(template).toBe(`redis://:$(REDIS_PASSWORD)@${service}:6379`);
    const url = template.replace('$(REDIS_PASSWORD)', PASSWORD).replace(`${service}:6379`, `127.0.0.1:${port}`);
    const agent = new Redis(url);
    clients.push(agent);
    expect(await agent.ping()).toBe('PONG');
    expect(await agent.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect(await agent.config('GET', 'maxmemory')).toEqual(['maxmemory', String(48 * 1024 * 1024)]);
    expect(await agent.config('GET', 'save')).toEqual(['save', '']);
    expect(await agent.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
  });
});

/** One inline command on a fresh connection, answered with the first line of the reply. */
function rawCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.slice(0, reply.indexOf('\r\n')));
      }
    });
  });
}
