/**
 * Node `http` in front of a fetch-style MCP handler (`createMcpHandler(...).fetch`): a Node request
 * as a web `Request`, and a web `Response` written back with its streaming (SSE) body passed on
 * as it comes. One bridge for the tests' and benchmarks' MCP servers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The web `Request` of a Node request whose body was read already (`body`); `signal` cancels it
 * (pass one aborted when the client goes away, so the handler ends its streams).
 */
export function webRequestOf(req: IncomingMessage, options: { body?: Buffer; signal?: AbortSignal } = {}): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const method = req.method ?? 'GET';
  const { body, signal } = options;
  const hasBody = body !== undefined && body.length > 0 && method !== 'GET' && method !== 'HEAD';
  return new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
    method,
    headers,
    ...(signal ? { signal } : {}),
    ...(hasBody ? { body } : {}),
  });
}

/**
 * Writes a web `Response` to Node: the head at once (an event stream's client waits for it), then
 * the body as it comes. A client that goes away cancels the body.
 */
export async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie') return;
    headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, headers);
  res.flushHeaders();
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  res.on('close', () => void reader.cancel().catch(() => {}));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch {
    // The client went away: the body was cancelled.
  } finally {
    res.end();
  }
}
