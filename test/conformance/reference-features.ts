/**
 * What the reference server serves: the tools, resources and prompts the official conformance
 * suite's server scenarios call by name (the suite's "everything server" contract), written with
 * the MCP TypeScript SDK v2. One factory backs both eras: a 2025-11-25 session gets one instance
 * for its life, a 2026-07-28 request gets a fresh one (the SDK's per-request serving).
 *
 * Nothing here keeps state that a second instance of the server could not see: multi-round
 * `requestState` is sealed with a key every instance shares, and list-changed events go through
 * the bus the serving side passes in (Redis pub/sub in a fleet). That is what makes the server a
 * fair peer for a fleet test: a failure through two agents is the agents', not the server's.
 */
import {
  acceptedContent,
  type CallToolResult,
  CLIENT_CAPABILITIES_META_KEY,
  fromJsonSchema,
  type GetPromptResult,
  type InputRequests,
  type InputRequiredResult,
  inputRequired,
  McpServer,
  ProtocolError,
  ProtocolErrorCode,
  type RequestStateCodec,
  ResourceTemplate,
  type ServerContext,
  type ServerNotifier,
} from '@modelcontextprotocol/server';
import * as z from 'zod';
import { registerTasks, type TaskStore } from './reference-tasks.js';

/** A 1×1 PNG and a minimal WAV, as the suite's image and audio checks expect base64 data. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';

export interface FeatureContext {
  /** Seals `requestState` (SEP-2322); the key is shared by every instance of the fleet. */
  readonly state: RequestStateCodec<Record<string, unknown>>;
  /** Publishes list-changed events to open `subscriptions/listen` streams, fleet-wide. */
  readonly notify: () => ServerNotifier;
  /** Tasks (SEP-2663) created by this instance (process). */
  readonly tasks: TaskStore;
}

const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type RequestedSchema = Parameters<typeof inputRequired.elicit>[0]['requestedSchema'];
/** An elicitation form schema; written loosely here, checked by the SDK and the suite. */
const objectSchema = (properties: Record<string, unknown>, required: string[] = []) =>
  ({ type: 'object', properties, required }) as unknown as RequestedSchema;
const askName = (message = 'What is your name?') =>
  inputRequired.elicit({ message, requestedSchema: objectSchema({ name: { type: 'string' } }, ['name']) });
const askConfirm = () =>
  inputRequired.elicit({
    message: 'Please confirm',
    requestedSchema: objectSchema({ ok: { type: 'boolean' } }, ['ok']),
  });
const textOf = (response: unknown): string | undefined => {
  const content = (response as { content?: { text?: unknown } } | undefined)?.content;
  return typeof content?.text === 'string' ? content.text : undefined;
};

export function createReferenceServer(context: FeatureContext): McpServer {
  const server = new McpServer(
    { name: 'sessionfleet-conformance-reference', version: '1.0.0' },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        // Deprecated in 2026-07-28 but what the 2025-11-25 logging scenario negotiates.
        logging: {},
        completions: {},
      },
      requestState: { verify: context.state.verify },
    },
  );
  registerContentTools(server);
  registerInteractiveTools(server);
  registerMultiRoundTools(server, context);
  registerResources(server);
  registerPrompts(server);
  registerTasks(server, context.tasks);
  return server;
}

function registerContentTools(server: McpServer): void {
  server.registerTool('test_simple_text', { description: 'Returns one text block' }, async () =>
    text('This is a simple text response for testing.'),
  );
  server.registerTool('test_image_content', { description: 'Returns one image block' }, async () => ({
    content: [{ type: 'image', data: PNG, mimeType: 'image/png' }],
  }));
  server.registerTool('test_audio_content', { description: 'Returns one audio block' }, async () => ({
    content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }],
  }));
  server.registerTool('test_embedded_resource', { description: 'Returns an embedded resource' }, async () => ({
    content: [
      {
        type: 'resource',
        resource: {
          uri: 'test://embedded-resource',
          mimeType: 'text/plain',
          text: 'This is an embedded resource content.',
        },
      },
    ],
  }));
  server.registerTool('test_multiple_content_types', { description: 'Text, image and resource' }, async () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: PNG, mimeType: 'image/png' },
      {
        type: 'resource',
        resource: {
          uri: 'test://mixed-content-resource',
          mimeType: 'application/json',
          text: '{"test":"data","value":123}',
        },
      },
    ],
  }));
  server.registerTool('test_error_handling', { description: 'Always fails' }, async () => {
    throw new Error('This tool intentionally returns an error for testing');
  });
  server.registerTool(
    'test_tool_with_logging',
    { description: 'Emits three log messages', inputSchema: z.object({}) },
    async (_args, ctx) => {
      for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
        await ctx.mcpReq.notify({ method: 'notifications/message', params: { level: 'info', data } });
        await sleep(20);
      }
      return text('Tool with logging executed successfully');
    },
  );
  server.registerTool(
    'test_tool_with_progress',
    { description: 'Reports progress when the caller sent a token', inputSchema: z.object({}) },
    async (_args, ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken;
      // No token, no progress notification (the spec's MUST NOT).
      if (progressToken !== undefined) {
        for (const progress of [0, 50, 100]) {
          await ctx.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken, progress, total: 100, message: `step ${progress}` },
          });
          if (progress < 100) await sleep(20);
        }
      }
      return text(String(progressToken ?? 'no-progress-token'));
    },
  );
  server.registerTool(
    'json_schema_2020_12_tool',
    {
      description: 'An input schema with JSON Schema 2020-12 keywords, advertised verbatim',
      inputSchema: fromJsonSchema({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        $defs: {
          address: {
            $anchor: 'addressDef',
            type: 'object',
            properties: { street: { type: 'string' }, city: { type: 'string' } },
          },
        },
        properties: {
          name: { type: 'string' },
          address: { $ref: '#/$defs/address' },
          contactMethod: { type: 'string', enum: ['phone', 'email'] },
          phone: { type: 'string' },
          email: { type: 'string' },
        },
        allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
        if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
        // biome-ignore lint/suspicious/noThenProperty: `then` is a JSON Schema 2020-12 keyword
        then: { required: ['phone'] },
        else: { required: ['email'] },
        additionalProperties: false,
      }),
    },
    async (args) => text(`called with ${JSON.stringify(args)}`),
  );
  server.registerTool(
    'test_x_mcp_header',
    {
      description: 'An argument mirrored into Mcp-Param-Region (SEP-2243)',
      // `x-mcp-header` is an extension keyword the SDK's JSON Schema type does not know.
      inputSchema: fromJsonSchema<{ region?: string; level?: number }>({
        type: 'object',
        properties: {
          region: { type: 'string', 'x-mcp-header': 'Region' },
          level: { type: 'integer' },
        },
      } as Parameters<typeof fromJsonSchema>[0]),
    },
    async (args) => text(`region=${args.region ?? '<none>'}`),
  );
}

/** Tools that ask the client something: 2025 sessions get server→client requests. */
function registerInteractiveTools(server: McpServer): void {
  const ask = async (ctx: ServerContext, method: string, params: Record<string, unknown>) => {
    try {
      // A server→client request of the 2025 session; `send` is typed per method, the call is not.
      const send = ctx.mcpReq.send as unknown as (request: { method: string; params: unknown }) => Promise<unknown>;
      return (await send.call(ctx.mcpReq, { method, params })) as Record<string, unknown>;
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) };
    }
  };
  const elicitTool = (name: string, message: string, requestedSchema: unknown) =>
    server.registerTool(name, { description: `elicits: ${message}`, inputSchema: z.object({}) }, async (_args, ctx) => {
      const result = await ask(ctx, 'elicitation/create', { message, requestedSchema });
      return text(`action=${String(result.action)}, content=${JSON.stringify(result.content ?? {})}`);
    });
  server.registerTool(
    'test_sampling',
    { description: 'Asks the client for a completion', inputSchema: z.object({ prompt: z.string() }) },
    async (args, ctx) => {
      const result = await ask(ctx, 'sampling/createMessage', {
        messages: [{ role: 'user', content: { type: 'text', text: args.prompt } }],
        maxTokens: 100,
      });
      return text(`LLM response: ${textOf(result) ?? JSON.stringify(result)}`);
    },
  );
  server.registerTool(
    'test_elicitation',
    { description: 'Asks the user for input', inputSchema: z.object({ message: z.string() }) },
    async (args, ctx) => {
      const result = await ask(ctx, 'elicitation/create', {
        message: args.message,
        requestedSchema: objectSchema({ response: { type: 'string', description: "User's response" } }, ['response']),
      });
      return text(`action=${String(result.action)}, content=${JSON.stringify(result.content ?? {})}`);
    },
  );
  elicitTool(
    'test_elicitation_sep1034_defaults',
    'Please review and update the form fields with defaults',
    objectSchema({
      name: { type: 'string', description: 'User name', default: 'John Doe' },
      age: { type: 'integer', description: 'User age', default: 30 },
      score: { type: 'number', description: 'User score', default: 95.5 },
      status: {
        type: 'string',
        description: 'User status',
        enum: ['active', 'inactive', 'pending'],
        default: 'active',
      },
      verified: { type: 'boolean', description: 'Verification status', default: true },
    }),
  );
  const titled = (prefix: string) =>
    ['First', 'Second', 'Third'].map((title, i) => ({ const: `value${i + 1}`, title: `${title} ${prefix}` }));
  elicitTool(
    'test_elicitation_sep1330_enums',
    'Please select options from the enum fields',
    objectSchema({
      untitledSingle: { type: 'string', description: 'one', enum: ['option1', 'option2', 'option3'] },
      titledSingle: { type: 'string', description: 'one, titled', oneOf: titled('Option') },
      legacyEnum: {
        type: 'string',
        description: 'one, legacy titles',
        enum: ['opt1', 'opt2', 'opt3'],
        enumNames: ['Option One', 'Option Two', 'Option Three'],
      },
      untitledMulti: {
        type: 'array',
        description: 'many',
        minItems: 1,
        maxItems: 3,
        items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
      },
      titledMulti: {
        type: 'array',
        description: 'many, titled',
        minItems: 1,
        maxItems: 3,
        items: { anyOf: titled('Choice') },
      },
    }),
  );
  // The server-stateless scenario's fixtures (SEP-2575), called by these names.
  server.registerTool(
    'test_missing_capability',
    { description: 'Needs the sampling client capability', inputSchema: z.object({}) },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      if (ctx.mcpReq.inputResponses?.['llm_answer'] !== undefined) return text('sampling round-trip complete');
      return inputRequired({
        inputRequests: {
          llm_answer: inputRequired.createMessage({
            messages: [{ role: 'user', content: { type: 'text', text: 'Reply with: pong' } }],
            maxTokens: 16,
          }),
        },
      });
    },
  );
  server.registerTool(
    'test_streaming_elicitation',
    { description: 'A plain result; no request on the response stream', inputSchema: z.object({}) },
    async () => text('result frames only'),
  );
  server.registerTool(
    'test_logging_tool',
    { description: 'Logs through the request-scoped, logLevel-gated channel', inputSchema: z.object({}) },
    async (_args, ctx) => {
      await ctx.mcpReq.log('info', 'delivered only when the request set _meta.logLevel');
      return text('logged');
    },
  );
}

/** Multi-round-trip tools (SEP-2322, 2026-07-28): input asked in-band, state sealed by the server. */
function registerMultiRoundTools(server: McpServer, context: FeatureContext): void {
  const { state } = context;
  const mrtr = (name: string, handler: (ctx: ServerContext) => Promise<CallToolResult | InputRequiredResult>) =>
    server.registerTool(name, { description: `multi-round: ${name}`, inputSchema: z.object({}) }, (_a, ctx) =>
      handler(ctx),
    );

  mrtr('test_input_required_result_elicitation', async (ctx) => {
    const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, 'user_name')?.name;
    if (typeof name === 'string') return text(`Hello, ${name}!`);
    return inputRequired({ inputRequests: { user_name: askName() } });
  });
  mrtr('test_input_required_result_sampling', async (ctx) => {
    const answer = ctx.mcpReq.inputResponses?.['capital_question'];
    if (answer !== undefined) return text(`Sampling response: ${textOf(answer) ?? JSON.stringify(answer)}`);
    return inputRequired({
      inputRequests: {
        capital_question: inputRequired.createMessage({
          messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }],
          maxTokens: 100,
        }),
      },
    });
  });
  mrtr('test_input_required_result_list_roots', async (ctx) => {
    const roots = (ctx.mcpReq.inputResponses?.['client_roots'] as { roots?: Array<{ uri?: string }> } | undefined)
      ?.roots;
    if (Array.isArray(roots)) return text(`roots: ${roots.map((r) => r.uri).join(', ')}`);
    return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
  });
  mrtr('test_input_required_result_request_state', async (ctx) => {
    if (acceptedContent(ctx.mcpReq.inputResponses, 'confirm') === undefined) {
      return inputRequired({
        inputRequests: { confirm: askConfirm() },
        requestState: await state.mint({ tool: 'request_state' }),
      });
    }
    if (ctx.mcpReq.requestState() === undefined) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'requestState missing or not verified');
    }
    return text('state-ok');
  });
  mrtr('test_input_required_result_multiple_inputs', async (ctx) => {
    const responses = ctx.mcpReq.inputResponses;
    const name = acceptedContent<{ name: string }>(responses, 'user_name')?.name;
    const greeting = textOf(responses?.['greeting']);
    const roots = (responses?.['client_roots'] as { roots?: unknown[] } | undefined)?.roots;
    if (typeof name === 'string' && greeting !== undefined && Array.isArray(roots)) {
      return text(`${greeting} ${name} (${roots.length} roots)`);
    }
    return inputRequired({
      inputRequests: {
        user_name: askName(),
        greeting: inputRequired.createMessage({
          messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }],
          maxTokens: 50,
        }),
        client_roots: inputRequired.listRoots(),
      },
      requestState: await state.mint({ tool: 'multiple_inputs' }),
    });
  });
  mrtr('test_input_required_result_multi_round', async (ctx) => {
    // The round lives in the sealed state: the instance that answers round 2 need not be round 1's.
    const sealed = ctx.mcpReq.requestState<Record<string, unknown>>();
    const round = sealed?.tool === 'multi_round' && typeof sealed.round === 'number' ? sealed.round : 0;
    if (round === 0) {
      return inputRequired({
        inputRequests: { step1: askName('Step 1: What is your name?') },
        requestState: await state.mint({ tool: 'multi_round', round: 1 }),
      });
    }
    if (round === 1) {
      const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, 'step1')?.name ?? 'unknown';
      return inputRequired({
        inputRequests: {
          step2: inputRequired.elicit({
            message: 'Step 2: What is your favorite color?',
            requestedSchema: objectSchema({ color: { type: 'string' } }, ['color']),
          }),
        },
        requestState: await state.mint({ tool: 'multi_round', round: 2, name }),
      });
    }
    const color = acceptedContent<{ color: string }>(ctx.mcpReq.inputResponses, 'step2')?.color ?? 'unknown';
    return text(`${String(sealed?.name ?? 'unknown')} likes ${color}`);
  });
  mrtr('test_input_required_result_tampered_state', async (ctx) => {
    // A tampered state never reaches here: the server's requestState.verify answers -32602.
    if (
      ctx.mcpReq.requestState() !== undefined &&
      acceptedContent(ctx.mcpReq.inputResponses, 'confirm') !== undefined
    ) {
      return text('integrity-ok');
    }
    return inputRequired({
      inputRequests: { confirm: askConfirm() },
      requestState: await state.mint({ tool: 'tampered_state' }),
    });
  });
  mrtr('test_input_required_result_capabilities', async (ctx) => {
    if (ctx.mcpReq.inputResponses !== undefined) return text('capability-aware input requests fulfilled');
    const envelope = ctx.mcpReq.envelope as Record<string, Record<string, unknown> | undefined> | undefined;
    const declared = envelope?.[CLIENT_CAPABILITIES_META_KEY];
    const inputRequests: InputRequests = {};
    if (declared?.elicitation !== undefined) inputRequests.user_name = askName();
    if (declared?.sampling !== undefined) {
      inputRequests.greeting = inputRequired.createMessage({
        messages: [{ role: 'user', content: { type: 'text', text: 'Generate a short greeting' } }],
        maxTokens: 50,
      });
    }
    if (declared?.roots !== undefined) inputRequests.client_roots = inputRequired.listRoots();
    if (Object.keys(inputRequests).length === 0) return text('no declared capability takes an input request');
    return inputRequired({ inputRequests });
  });
  server.registerTool('test_trigger_tool_change', { description: 'Publishes tools/list_changed' }, async () => {
    context.notify().toolsChanged();
    return text('tools_list_changed published');
  });
  server.registerTool('test_trigger_prompt_change', { description: 'Publishes prompts/list_changed' }, async () => {
    context.notify().promptsChanged();
    return text('prompts_list_changed published');
  });
}

function registerResources(server: McpServer): void {
  const fixed = (name: string, uri: string, mimeType: string, body: { text: string } | { blob: string }) =>
    server.registerResource(name, uri, { title: name, description: `${name} for testing`, mimeType }, async () => ({
      contents: [{ uri, mimeType, ...body }],
    }));
  fixed('static-text', 'test://static-text', 'text/plain', {
    text: 'This is the content of the static text resource.',
  });
  fixed('static-binary', 'test://static-binary', 'image/png', { blob: PNG });
  fixed('watched-resource', 'test://watched-resource', 'text/plain', { text: 'Watched resource content' });
  server.registerResource(
    'template',
    new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { title: 'Resource Template', description: 'Parameter substitution', mimeType: 'application/json' },
    async (uri, variables) => ({
      contents: [
        {
          uri: uri.toString(),
          mimeType: 'application/json',
          text: JSON.stringify({ id: variables.id, templateTest: true, data: `Data for ID: ${variables.id}` }),
        },
      ],
    }),
  );
  // 2025-11-25 subscriptions: the scenarios check the acknowledgement, not later updates.
  server.server.setRequestHandler('resources/subscribe', async () => ({}));
  server.server.setRequestHandler('resources/unsubscribe', async () => ({}));
  server.server.setRequestHandler('logging/setLevel', async () => ({}));
  server.server.setRequestHandler('completion/complete', async () => ({
    completion: { values: [], total: 0, hasMore: false },
  }));
}

function registerPrompts(server: McpServer): void {
  const user = (content: GetPromptResult['messages'][number]['content']) => ({ role: 'user' as const, content });
  server.registerPrompt('test_simple_prompt', { title: 'Simple', description: 'No arguments' }, async () => ({
    messages: [user({ type: 'text', text: 'This is a simple prompt for testing.' })],
  }));
  server.registerPrompt(
    'test_prompt_with_arguments',
    {
      title: 'With arguments',
      description: 'Two required arguments',
      argsSchema: z.object({ arg1: z.string().describe('First'), arg2: z.string().describe('Second') }),
    },
    async (args) => ({
      messages: [user({ type: 'text', text: `Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'` })],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_embedded_resource',
    {
      title: 'With embedded resource',
      description: 'Embeds the named resource',
      argsSchema: z.object({ resourceUri: z.string().describe('URI to embed') }),
    },
    async (args) => ({
      messages: [
        user({
          type: 'resource',
          resource: { uri: args.resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
        }),
        user({ type: 'text', text: 'Please process the embedded resource above.' }),
      ],
    }),
  );
  server.registerPrompt('test_prompt_with_image', { title: 'With image', description: 'An image' }, async () => ({
    messages: [
      user({ type: 'image', data: PNG, mimeType: 'image/png' }),
      user({ type: 'text', text: 'Please analyze the image above.' }),
    ],
  }));
  server.registerPrompt(
    'test_input_required_result_prompt',
    { title: 'Multi-round prompt', description: 'Asks for context before rendering' },
    // Registered without argsSchema, the callback's only argument is the request context.
    async (ctx: unknown): Promise<GetPromptResult | InputRequiredResult> => {
      const given = acceptedContent<{ context: string }>((ctx as ServerContext).mcpReq.inputResponses, 'user_context');
      if (typeof given?.context === 'string') {
        return { messages: [user({ type: 'text', text: `Use the following context: ${given.context}` })] };
      }
      return inputRequired({
        inputRequests: {
          user_context: inputRequired.elicit({
            message: 'What context should the prompt use?',
            requestedSchema: objectSchema({ context: { type: 'string' } }, ['context']),
          }),
        },
      });
    },
  );
}
