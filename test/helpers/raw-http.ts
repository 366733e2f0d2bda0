/**
 * Raw HTTP/1.1 connections to an agent, for tests that send what no client library would (slow
 * headers, trickled bodies, oversized blocks), and the agent's refusal counter.
 */
import { connect, type Socket } from 'node:net';
import { expect } from 'vitest';
import { CONNECTIONS_REFUSED_METRIC } from '../../policy/agent-interface.js';

/** A raw connection: what it received, and a promise of everything once the agent closed it. */
export interface RawConnection {
  readonly socket: Socket;
  received(): string;
  readonly isClosed: boolean;
  /** Resolves with all bytes received once the agent closed the connection; rejects after `ms`. */
  closedWithin(ms: number, what: string): Promise<string>;
}

/** Opens a connection to `port` on loopback; `track` collects the socket for the test's clean-up. */
export async function openRaw(port: number, track: Socket[]): Promise<RawConnection> {
  const socket = connect({ port, host: '127.0.0.1' });
  track.push(socket);
  let data = '';
  let isClosed = false;
  socket.on('data', (chunk: Buffer) => {
    data += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve(data);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => data,
    get isClosed() {
      return isClosed;
    },
    closedWithin(ms, what) {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        closed,
        new Promise<string>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what}: not answered and closed within ${ms} ms`)), ms);
        }),
      ]).finally(() => clearTimeout(timer));
    },
  };
}

/** Status, headers (lower case) and JSON body of the one response in `raw`. */
export function parseRawResponse(raw: string): { status: number; headers: Record<string, string>; body: unknown } {
  const end = raw.indexOf('\r\n\r\n');
  expect(end, `a whole HTTP response, got ${JSON.stringify(raw.slice(0, 200))}`).toBeGreaterThan(0);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const text = raw.slice(end + 4);
  return { status: Number(statusLine?.split(' ')[1]), headers, body: text ? JSON.parse(text) : undefined };
}

/** How many HTTP connections or requests the agent refused for `reason`, from its `/metrics`. */
export async function connectionsRefused(adminUrl: string, reason: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith(`${CONNECTIONS_REFUSED_METRIC}{`) &&
        l.includes(`reason="${reason}"`) &&
        l.includes('front="http"'),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}
