/**
 * A plain HTTP round-robin load balancer, the kind a fleet of agents sits behind in production
 * (a Kubernetes Service with an L7 ingress, an Azure load balancer): every request goes to the
 * next backend in turn, whatever connection it came on, with no notion of sessions or tasks. Host
 * and every other header pass unchanged; bodies and responses stream (SSE included), and a client
 * that goes away closes the backend request too.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RoundRobinBalancer {
  readonly url: string;
  /** How many requests each backend got, in backend order. */
  readonly counts: readonly number[];
  close(): Promise<void>;
}

export async function startRoundRobinBalancer(backends: readonly string[]): Promise<RoundRobinBalancer> {
  if (backends.length === 0) throw new Error('startRoundRobinBalancer: give at least one backend URL');
  const targets = backends.map((backend) => new URL(backend));
  const counts = targets.map(() => 0);
  let next = 0;
  const server: Server = createServer((req, res) => {
    const index = next;
    next = (next + 1) % targets.length;
    counts[index]! += 1;
    const target = targets[index]!;
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
