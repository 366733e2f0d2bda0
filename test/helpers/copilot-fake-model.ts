/**
 * A tiny OpenAI-compatible model server on a free loopback port, so the Copilot CLI can run whole
 * turns offline: a session created with `model: "fake-model"` and
 * `provider: { type: "openai", baseUrl: <baseUrl>, apiKey: "x" }` sends its completions here.
 *
 * Every completion answers with a fixed reply, streamed when the request asks for it. A test can
 * hold replies back (`hold()`), to keep turns in flight for as long as it needs, then `release()`.
 *
 * With `toolCalls`, the model uses the CLI's own tools the way a model steered by a hostile prompt
 * would: a turn's first completion calls those tools (`bash`, `view`, `grep`…, as the CLI offers
 * them), and the completion after their results answers with the reply. Every request body is kept
 * (`requests`), so a test can read what the tools returned to the model.
 */
import { createServer, type ServerResponse } from 'node:http';

export interface FakeModel {
  /** `http://127.0.0.1:PORT/v1`: the provider's `baseUrl`. */
  readonly baseUrl: string;
  /** Completion requests received so far. */
  readonly completions: number;
  /** The `authorization` headers received (to prove the provider key travels upstream, not to logs). */
  readonly authorizations: readonly string[];
  /** The completion request bodies received, as sent (tool results included). */
  readonly requests: readonly string[];
  /** Replies wait until `release()`; requests already waiting stay waiting. */
  hold(): void;
  /** Lets every held reply (and every later one) go. */
  release(): void;
  close(): Promise<void>;
}

export const FAKE_MODEL_REPLY = 'Hello from the fake model.';

/** The session options that point a session at the fake model. */
export function fakeModelSessionOptions(model: FakeModel) {
  return {
    model: 'fake-model',
    provider: { type: 'openai' as const, baseUrl: model.baseUrl, apiKey: 'fake-model-key-0123456789' },
  };
}

/** A tool call the fake model makes: the CLI tool's name and its arguments. */
export interface FakeToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

export async function startFakeModel(
  options: { reply?: string; toolCalls?: readonly FakeToolCall[] | (() => readonly FakeToolCall[]) } = {},
): Promise<FakeModel> {
  const reply = options.reply ?? FAKE_MODEL_REPLY;
  let completions = 0;
  const authorizations: string[] = [];
  const requests: string[] = [];
  let held = false;
  let waiting: Array<() => void> = [];

  const answer = (response: ServerResponse, body: string) => {
    let stream = false;
    let messages: Array<{ role?: string }> = [];
    try {
      const parsed = JSON.parse(body) as { stream?: boolean; messages?: Array<{ role?: string }> };
      stream = parsed.stream === true;
      messages = Array.isArray(parsed.messages) ? parsed.messages : [];
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad json"}}');
      return;
    }
    const created = Math.floor(Date.now() / 1000);
    const id = `chatcmpl-fake-${completions}`;
    // Tools are called once per turn: until their results follow the turn's last user message.
    const lastUser = messages.map((m) => m.role).lastIndexOf('user');
    const calls = typeof options.toolCalls === 'function' ? options.toolCalls() : options.toolCalls;
    const toolCalls =
      calls && !messages.slice(lastUser + 1).some((m) => m.role === 'tool')
        ? calls.map((call, index) => ({
            index,
            id: `call_${completions}_${index}`,
            type: 'function',
            function: { name: call.name, arguments: JSON.stringify(call.arguments) },
          }))
        : undefined;
    if (!stream) {
      const message = toolCalls
        ? { role: 'assistant', content: null, tool_calls: toolCalls.map(({ index: _, ...call }) => call) }
        : { role: 'assistant', content: reply };
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model: 'fake-model',
          choices: [{ index: 0, message, finish_reason: toolCalls ? 'tool_calls' : 'stop' }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta: Record<string, unknown>, finish: string | null, usage?: Record<string, number>) =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model: 'fake-model',
        choices: [{ index: 0, delta, finish_reason: finish }],
        ...(usage ? { usage } : {}),
      })}\n\n`;
    response.write(chunk({ role: 'assistant', content: '' }, null));
    if (toolCalls) {
      response.write(chunk({ tool_calls: toolCalls }, null));
      response.write(chunk({}, 'tool_calls', { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }));
      response.end('data: [DONE]\n\n');
      return;
    }
    response.write(chunk({ content: reply }, null));
    response.write(chunk({}, 'stop', { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }));
    response.end('data: [DONE]\n\n');
  };

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (d: Buffer) => chunks.push(d));
    request.on('end', () => {
      const path = (request.url ?? '').split('?')[0];
      if (request.method === 'GET' && path === '/v1/models') {
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model', owned_by: 'tests' }] }));
        return;
      }
      if (request.method !== 'POST' || path !== '/v1/chat/completions') {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
        return;
      }
      completions++;
      authorizations.push(String(request.headers.authorization ?? ''));
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push(body);
      if (held) waiting.push(() => answer(response, body));
      else answer(response, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('fake model server has no address');

  return {
    baseUrl: `http://127.0.0.1:${address.port}/v1`,
    get completions() {
      return completions;
    },
    authorizations,
    requests,
    hold() {
      held = true;
    },
    release() {
      held = false;
      const go = waiting;
      waiting = [];
      for (const fn of go) fn();
    },
    close: () =>
      new Promise<void>((resolve) => {
        held = false;
        for (const fn of waiting.splice(0)) fn();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What each tool the model called returned in a session's events, by tool name (the completion event, as JSON). */
export function toolResultsByName(events: ReadonlyArray<{ type: string; data: unknown }>): Record<string, string> {
  const started = new Map<string, string>();
  const tools: Record<string, string> = {};
  for (const event of events) {
    const data = event.data as { toolCallId?: string; toolName?: string };
    if (event.type === 'tool.execution_start' && data.toolCallId && data.toolName)
      started.set(data.toolCallId, data.toolName);
    if (event.type === 'tool.execution_complete' && data.toolCallId)
      tools[started.get(data.toolCallId) ?? data.toolCallId] = JSON.stringify(event.data);
  }
  return tools;
}
