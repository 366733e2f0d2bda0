/**
 * The Copilot front against hostile connections (issue 14 §3, ADR 0017), with real peers: the
 * Copilot CLI from npm behind the agent as a process, raw TCP clients in this process. Before its
 * `connect` succeeds a connection may send only small frames, has a handshake timeout, and only
 * so many such connections are held at once; after it, frames have a cap of their own; what a
 * connection held is given back when it ends; every refusal is counted and logged, without a token.
 *
 * No timed assertions: "closed" waits are bounded generously (a multiple of the timeout) only so
 * that a regression fails instead of hanging.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CONNECTIONS_REFUSED_METRIC } from '../../../policy/agent-interface.js';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import { eventually, openRawClient, type RawRpcClient } from '../../helpers/copilot-rpc.js';

const TOKENS = { alice: 'alice-token-hostile-8d1f3a' } as const;
const POLICY = { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 3, concurrencyPerInstance: 50 };
const MiB = 1024 * 1024;

let cli: CopilotCli;
const agents: CopilotAgent[] = [];
const raws: RawRpcClient[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  cli = await startCopilotCli();
});

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(raws.splice(0).map((r) => r.close()));
  // Every agent here logged refusals and authentications: none may carry a token.
  for (const agent of agents) {
    expect(agent.output()).not.toContain(TOKENS.alice);
    expect(agent.output()).not.toContain(cli.token);
  }
  await Promise.all(agents.splice(0).map((a) => a.dispose()));
});

afterAll(async () => {
  await cli?.dispose();
});

async function agentWith(extraArgs: string[] = []): Promise<CopilotAgent> {
  const agent = await startCopilotAgent({
    policy: POLICY,
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [TOKENS.alice]: 'alice' },
    extraArgs,
  });
  agents.push(agent);
  return agent;
}

async function raw(agent: CopilotAgent, token?: string): Promise<RawRpcClient> {
  const client = await openRawClient(agent.clientPort);
  raws.push(client);
  if (token !== undefined) {
    const reply = await client.call('connect', { token });
    if (reply.error) throw new Error(reply.error.message);
  }
  return client;
}

async function metrics(agent: CopilotAgent): Promise<string> {
  return (await fetch(`${agent.adminUrl}/metrics`)).text();
}

/** A sample's value from the Prometheus text, 0 when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return 0;
}

function refused(text: string, reason: string): number {
  return sample(text, CONNECTIONS_REFUSED_METRIC, { front: 'copilot', reason });
}

/** Resolves once the agent closed `client`, failing after `ms` (a bound, not a measurement). */
async function closedWithin(client: RawRpcClient, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.closed,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what}: the agent did not close the connection within ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The error the agent sent with id null before closing (the connection-level refusal). */
function refusal(client: RawRpcClient): { code: number; data?: { code?: string } } | undefined {
  const reply = client.inbound.find((m) => m.method === '(response)')?.params as
    | { error?: { code: number; data?: { code?: string } } }
    | undefined;
  return reply?.error;
}

/** Writes `total` bytes of a frame declared `declared` bytes long until written or the peer closed. */
function sendHugeFrame(port: number, declared: number, total: number): Promise<{ sent: number }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    sockets.push(socket);
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ sent });
    };
    socket.on('error', finish);
    socket.on('close', finish);
    socket.once('connect', () => {
      socket.write(`Content-Length: ${declared}\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"ping","params":{"message":"`);
      const pump = () => {
        while (sent < total && !socket.destroyed) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        if (sent >= total) {
          socket.end();
          finish();
        }
      };
      pump();
    });
  });
}

describe('Copilot front: before connect succeeds', () => {
  it('6 strangers declaring 63 MiB frames and sending 60 MiB are closed after one small frame; RSS does not follow', async () => {
    const agent = await agentWith();
    const before = sample(await metrics(agent), 'sessionfleet_agent_process_resident_memory_bytes');
    const attacks = await Promise.all(
      Array.from({ length: 6 }, () => sendHugeFrame(agent.clientPort, 63 * MiB, 60 * MiB)),
    );
    const text = await metrics(agent);
    // Each was cut off long before 60 MiB (the kernel's socket buffers take a few MiB).
    for (const attack of attacks) expect(attack.sent).toBeLessThan(60 * MiB);
    expect(refused(text, 'frame-too-large')).toBe(6);
    const after = sample(text, 'sessionfleet_agent_process_resident_memory_bytes');
    // Measured on main before the fix: +350 MiB (issue 14). A bound, generous for GC noise.
    expect(after - before).toBeLessThan(48 * MiB);
    const line = await agent.waitForLog((l) => l.refusal === 'frame-too-large');
    expect(line).toMatchObject({ level: 40, phase: 'new', limit: 64 * 1024 });
  });

  it('a frame above the handshake limit is refused before connect and accepted after it', async () => {
    const agent = await agentWith();
    const message = 'x'.repeat(100 * 1024);
    const stranger = await raw(agent);
    stranger.send({ jsonrpc: '2.0', id: 1, method: 'ping', params: { message } });
    await closedWithin(stranger, 10_000, 'a 100 KiB frame before connect');
    expect(refusal(stranger)).toMatchObject({ code: -31052, data: { code: 'PAYLOAD_TOO_LARGE' } });

    const alice = await raw(agent, TOKENS.alice);
    expect(await alice.request('ping', { message })).toMatchObject({ message: `pong: ${message}` });
  });

  it('silent connections are closed at the handshake timeout with HANDSHAKE_TIMEOUT, counted and logged once each', async () => {
    const agent = await agentWith(['--copilot-handshake-timeout-ms', '500']);
    const silent = await Promise.all(Array.from({ length: 30 }, () => raw(agent)));
    // A connection that authenticated in time is not touched.
    const alice = await raw(agent, TOKENS.alice);
    await Promise.all(silent.map((c) => closedWithin(c, 500 * 3 + 10_000, 'a silent connection')));
    for (const client of silent)
      expect(refusal(client)).toMatchObject({ code: -31050, data: { code: 'HANDSHAKE_TIMEOUT' } });
    expect(refused(await metrics(agent), 'handshake-timeout')).toBe(30);
    expect(await alice.request('ping', { message: 'still here' })).toMatchObject({ message: 'pong: still here' });
    expect(alice.isClosed()).toBe(false);
    const lines = agent.logs().filter((l) => l.refusal === 'handshake-timeout');
    // One line, the other 29 counted in it or left for the next (a flood is not a log flood).
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatchObject({ level: 40, timeoutMs: 500, phase: 'new' });
  });

  it('only --copilot-max-unauthenticated strangers are held; one more is refused at once; connect frees a place', async () => {
    const agent = await agentWith(['--copilot-max-unauthenticated', '5', '--copilot-handshake-timeout-ms', '60000']);
    const waiting = await Promise.all(Array.from({ length: 5 }, () => raw(agent)));
    await eventually(
      async () => sample(await metrics(agent), 'sessionfleet_copilot_unauthenticated_connections') === 5,
      10_000,
      'five strangers counted',
    );
    const sixth = await raw(agent);
    await closedWithin(sixth, 10_000, 'the sixth stranger');
    expect(refusal(sixth)).toMatchObject({ code: -31051, data: { code: 'TOO_MANY_UNAUTHENTICATED', limit: 5 } });
    expect(refused(await metrics(agent), 'unauthenticated-limit')).toBe(1);
    for (const client of waiting) expect(client.isClosed()).toBe(false);

    // One of the five authenticates: it is no stranger any more, and a new connection gets in.
    const reply = await waiting[0]!.call('connect', { token: TOKENS.alice });
    expect(reply.error).toBeUndefined();
    const next = await raw(agent, TOKENS.alice);
    expect(await next.request('ping', { message: 'in' })).toMatchObject({ message: 'pong: in' });
    expect(sample(await metrics(agent), 'sessionfleet_copilot_unauthenticated_connections')).toBe(4);
  });
});

describe('Copilot front: after connect', () => {
  it('a frame above --copilot-max-frame-bytes closes the connection with PAYLOAD_TOO_LARGE; others are served', async () => {
    const agent = await agentWith(['--copilot-max-frame-bytes', String(MiB)]);
    const alice = await raw(agent, TOKENS.alice);
    const other = await raw(agent, TOKENS.alice);
    const fits = 'y'.repeat(MiB / 2);
    expect(await alice.request('ping', { message: fits })).toMatchObject({ message: `pong: ${fits}` });
    alice.send({ jsonrpc: '2.0', id: 7, method: 'ping', params: { message: 'z'.repeat(2 * MiB) } });
    await closedWithin(alice, 10_000, 'a 2 MiB frame after connect');
    expect(refusal(alice)).toMatchObject({ code: -31052, data: { code: 'PAYLOAD_TOO_LARGE', limit: MiB } });
    expect(await other.request('ping', { message: 'fine' })).toMatchObject({ message: 'pong: fine' });
    const line = await agent.waitForLog((l) => l.refusal === 'frame-too-large');
    expect(line).toMatchObject({ principal: 'alice', phase: 'ready', limit: MiB });
  });

  it('what a connection held (a partial frame) is given back when it ends', async () => {
    const agent = await agentWith();
    const alice = await raw(agent, TOKENS.alice);
    alice.writeRaw(`Content-Length: ${12 * MiB}\r\n\r\n`);
    alice.writeRaw(Buffer.alloc(8 * MiB, 0x20));
    await eventually(
      async () => sample(await metrics(agent), 'sessionfleet_copilot_buffered_bytes') >= 8 * MiB,
      10_000,
      'the partial frame counted',
    );
    await alice.close();
    await eventually(
      async () => sample(await metrics(agent), 'sessionfleet_copilot_buffered_bytes') === 0,
      10_000,
      'the partial frame given back',
    );
  });
});
