/** `npm run demo` keeps working: its smoke mode drives the SDK client through the demo agent. */
import { describe, expect, it } from 'vitest';
import { run } from '../../helpers/run.js';

describe('npm run demo', () => {
  it.each(['mcp-streamable-http', 'mcp-sse'])('serves an MCP client through the agent (%s)', async (affinity) => {
    const result = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'demo/run.ts',
        '--smoke',
        '--affinity',
        affinity,
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        '127.0.0.1:0',
      ],
      { timeoutMs: 60_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const line = result.stdout.split('\n').find((l) => l.startsWith('{"tools"'));
    const answer = JSON.parse(line ?? '{}') as { tools: string[]; echo: unknown; session: Array<{ text: string }> };
    expect(answer.tools.sort()).toEqual(['echo', 'sleep', 'whoami']);
    expect(answer.echo).toEqual([{ type: 'text', text: 'hello through the agent' }]);
    expect(answer.session[0]?.text).toMatch(/^[0-9a-f-]{36}$/);
  });
});
