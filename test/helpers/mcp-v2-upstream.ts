/**
 * A real MCP 2026-07-28 server for tests: the official SDK v2 (`@modelcontextprotocol/server`
 * 2.4.0, `createMcpHandler`, both eras) on a loopback `node:http` port, in this process. The
 * handler is web-standard (Request → Response); the bridge below streams the response body to
 * the socket as the SDK produces it (a `subscriptions/listen` stays open) and aborts the request
 * when the client side closes.
 *
 * Tools: `echo` answers at once; `hold` answers when the test calls `release()`, so a test can
 * keep a request in flight without timing anything.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { sendWebResponse, webRequestOf } from './web-bridge.js';

export interface McpV2Upstream {
  readonly url: string;
  /** Requests with `Mcp-Method` seen so far, in order. */
  readonly methods: string[];
  /** The `x-user` header of every request seen (the principal the agent let through), in order. */
  readonly users: string[];
  /** Every request with a body, as it arrived: its `traceparent` header and its body text. */
  readonly received: Array<{ traceparent: string | undefined; body: string }>;
  /** Ends every `hold` call waiting now. */
  release(): void;
  /** `hold` calls waiting now. */
  readonly holding: number;
  close(): Promise<void>;
}

export async function startMcpV2Upstream(): Promise<McpV2Upstream> {
  let waiting: Array<() => void> = [];
  const methods: string[] = [];
  const users: string[] = [];
  const received: McpV2Upstream['received'] = [];
  const handler = createMcpHandler(() => {
    const server = new McpServer({ name: 'sessionfleet-v2-upstream', version: '1.0.0' });
    server.registerTool('echo', { description: 'answers at once' }, async () => ({
      content: [{ type: 'text', text: 'echo' }],
    }));
    server.registerTool('hold', { description: 'answers when the test releases it' }, async () => {
      await new Promise<void>((resolve) => waiting.push(resolve));
      return { content: [{ type: 'text', text: 'held' }] };
    });
    return server;
  });

  async function bridge(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.headers['mcp-method'];
    if (typeof method === 'string') methods.push(method);
    const user = req.headers['x-user'];
    if (typeof user === 'string') users.push(user);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (chunks.length > 0) {
      const traceparent = req.headers.traceparent;
      received.push({
        traceparent: typeof traceparent === 'string' ? traceparent : undefined,
        body: Buffer.concat(chunks).toString('utf8'),
      });
    }
    const aborted = new AbortController();
    res.on('close', () => aborted.abort());
    const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
    await sendWebResponse(
      res,
      await handler.fetch(webRequestOf(req, { ...(body ? { body } : {}), signal: aborted.signal })),
    );
  }

  const server = createServer((req, res) => {
    bridge(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    methods,
    users,
    received,
    release() {
      for (const resolve of waiting.splice(0)) resolve();
    },
    get holding() {
      return waiting.length;
    },
    async close() {
      for (const resolve of waiting.splice(0)) resolve();
      waiting = [];
      await handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
