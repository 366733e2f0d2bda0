import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EndpointScanner } from '../../../agent/http/sse-scanner.js';

function feed(scanner: EndpointScanner, chunks: readonly (string | Buffer)[]) {
  for (const chunk of chunks) {
    const state = scanner.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (state !== 'scanning') return state;
  }
  return scanner.state;
}

describe('EndpointScanner', () => {
  it('finds the endpoint event the MCP SDK sends first', () => {
    const scanner = new EndpointScanner(1024);
    expect(feed(scanner, ['event: endpoint\ndata: /messages?sessionId=abc\n\n'])).toBe('found');
    expect(scanner.endpoint).toBe('/messages?sessionId=abc');
  });

  it('waits for the blank line that dispatches the event', () => {
    const scanner = new EndpointScanner(1024);
    expect(feed(scanner, ['event: endpoint\ndata: /m?sessionId=1\n'])).toBe('scanning');
    expect(feed(scanner, ['\n'])).toBe('found');
  });

  it('skips other events, comments and unknown fields, and stops for good once found', () => {
    const scanner = new EndpointScanner(1024);
    const state = feed(scanner, [
      ': hello\r\n',
      'event: message\r\ndata: {"x":1}\r\n\r\n',
      'retry: 10\r\nevent:endpoint\r\ndata:/m?sessionId=z\r\n\r\n',
      'event: endpoint\ndata: /other\n\n',
    ]);
    expect(state).toBe('found');
    expect(scanner.endpoint).toBe('/m?sessionId=z');
    expect(scanner.push(Buffer.from('event: endpoint\ndata: late\n\n'))).toBe('found');
    expect(scanner.endpoint).toBe('/m?sessionId=z');
  });

  it('gives up after its byte budget, and when the stream ends first', () => {
    const scanner = new EndpointScanner(100);
    expect(feed(scanner, ['data: x\n\n'.repeat(20)])).toBe('gave-up');
    const short = new EndpointScanner(100);
    expect(feed(short, ['event: endpoint\n'])).toBe('scanning');
    expect(short.end()).toBe('gave-up');
    expect(short.endpoint).toBeUndefined();
  });

  it('finds the same endpoint however the stream is cut into chunks and whatever line endings it uses', () => {
    const eol = fc.constantFrom('\n', '\r\n', '\r');
    const before = fc.array(
      fc.oneof(
        fc.constant(': keep-alive'),
        fc.string({ unit: fc.constantFrom('a', 'b', '{', '"', ':', ' ', 'é') }).map((s) => `data: ${s}`),
        fc.constant('event: message'),
      ),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(
        before,
        fc.stringMatching(/^[A-Za-z0-9-]{1,40}$/),
        eol,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (lines, id, newline, cuts, bom) => {
          const text = `${bom ? '\uFEFF' : ''}${lines.map((l) => `${l}${newline}${newline}`).join('')}event: endpoint${newline}data: /messages?sessionId=${id}${newline}${newline}`;
          const bytes = Buffer.from(text);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let at = 0;
          for (const p of [...points, bytes.length]) {
            chunks.push(bytes.subarray(at, p));
            at = p;
          }
          const scanner = new EndpointScanner(64 * 1024);
          expect(feed(scanner, chunks)).toBe('found');
          expect(scanner.endpoint).toBe(`/messages?sessionId=${id}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});
