import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deleteOwnPod, inClusterPod } from '../../../agent/core/recycle.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

describe('recycling a pod', () => {
  it('reads the pod identity from the projected service-account files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-sa-'));
    writeFileSync(join(dir, 'token'), 'tok-123\n');
    writeFileSync(join(dir, 'namespace'), 'fleet\n');
    writeFileSync(join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\n');
    const env = {
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
      SESSIONFLEET_INSTANCE_ID: 'mcp-7f9c-abcde',
    };
    expect(await inClusterPod(env, dir)).toEqual({
      apiUrl: 'https://10.96.0.1:443',
      token: 'tok-123',
      namespace: 'fleet',
      podName: 'mcp-7f9c-abcde',
      ca: '-----BEGIN CERTIFICATE-----\n',
    });
  });

  it('is not in a cluster without the API host or the credentials', async () => {
    expect(await inClusterPod({ SESSIONFLEET_INSTANCE_ID: 'x' }, '/nonexistent')).toBeUndefined();
    expect(await inClusterPod({ KUBERNETES_SERVICE_HOST: '10.0.0.1', HOSTNAME: 'x' }, '/nonexistent')).toBeUndefined();
  });

  it('sends DELETE for its own pod with the service-account token', async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
        res.writeHead(seen.length === 1 ? 200 : 403, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('no address');
    const pod = { apiUrl: `http://127.0.0.1:${address.port}`, token: 'tok-123', namespace: 'fleet', podName: 'mcp-1' };
    expect(await deleteOwnPod(pod)).toBe(true);
    expect(await deleteOwnPod(pod)).toBe(false);
    expect(seen[0]).toEqual({
      method: 'DELETE',
      url: '/api/v1/namespaces/fleet/pods/mcp-1',
      auth: 'Bearer tok-123',
      body: '{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}',
    });
  });
});
