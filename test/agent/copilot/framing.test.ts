import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeBody, encodeMessage, FrameDecoder, FramingError } from '../../../agent/copilot/framing.js';

const frame = (body: string) => Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 'utf8');

/** Splits a buffer at the given cut points (sorted, deduplicated, inside the buffer). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    parts.push(bytes.subarray(last, p));
    last = p;
  }
  parts.push(bytes.subarray(last));
  return parts;
}

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): string[] {
  return chunks.flatMap((c) => decoder.push(c)).map((b) => b.toString('utf8'));
}

describe('FrameDecoder', () => {
  it('reads several frames from one chunk, in order', () => {
    const decoder = new FrameDecoder();
    const bytes = Buffer.concat([frame('{"a":1}'), frame('{"b":2}'), frame('{"c":3}')]);
    expect(decodeAll(decoder, [bytes])).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('reads a frame delivered one byte at a time, and holds a partial one', () => {
    const decoder = new FrameDecoder();
    const bytes = Buffer.concat([frame('{"héllo":"wörld ✓"}'), frame('{"x":1}').subarray(0, 22)]);
    const out: string[] = [];
    for (const byte of bytes) out.push(...decodeAll(decoder, [Buffer.from([byte])]));
    expect(out).toEqual(['{"héllo":"wörld ✓"}']);
    expect(decoder.bufferedBytes).toBeGreaterThan(0);
  });

  it('accepts Content-Type, any header case and order, and ignores unknown headers', () => {
    const decoder = new FrameDecoder();
    const body = '{"ok":true}';
    const bytes = Buffer.from(
      `content-type: application/vscode-jsonrpc; charset=utf-8\r\nX-Other: 1\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    expect(decodeAll(decoder, [bytes])).toEqual([body]);
  });

  it('counts Content-Length in UTF-8 bytes when writing', () => {
    const text = { s: 'ü€😀' };
    const encoded = encodeMessage(text);
    const json = JSON.stringify(text);
    expect(encoded.toString('utf8')).toBe(`Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
    expect(Buffer.byteLength(json)).toBeGreaterThan(json.length);
    expect(decodeAll(new FrameDecoder(), [encoded])).toEqual([json]);
    expect(encodeBody(Buffer.from(json))).toEqual(encoded);
  });

  it('reads a 20 MiB frame split into 64 KiB chunks', () => {
    const decoder = new FrameDecoder();
    const big = JSON.stringify({ blob: 'x'.repeat(20 * 1024 * 1024) });
    const bytes = encodeBody(big);
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 65536) out.push(...decoder.push(bytes.subarray(i, i + 65536)));
    expect(out).toHaveLength(1);
    expect(out[0]!.length).toBe(Buffer.byteLength(big));
    expect(out[0]!.toString('utf8') === big).toBe(true);
  });

  it('rejects a Content-Length above the limit before buffering the body', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
    expect(() => decoder.push(Buffer.from('Content-Length: 1025\r\n\r\n'))).toThrow(
      new FramingError('frame-too-large', 'Content-Length 1025 exceeds the limit of 1024 bytes'),
    );
    // The decoder stays failed: the connection is to be closed, not resynchronized.
    expect(() => decoder.push(frame('{}'))).toThrow(FramingError);
  });

  it('rejects a header block that never ends', () => {
    const decoder = new FrameDecoder({ maxHeaderBytes: 64 });
    expect(decoder.push(Buffer.from('Content-Length: 2\r\n'))).toEqual([]);
    expect(() => decoder.push(Buffer.from(`X-Padding: ${'a'.repeat(64)}`))).toThrow(
      new FramingError('header-too-large', 'header block longer than 64 bytes without its terminating empty line'),
    );
  });

  it.each([
    ['no Content-Length', 'Content-Type: x\r\n\r\n{}', 'missing-content-length'],
    ['a line without a colon', 'Content-Length 2\r\n\r\n{}', 'malformed-header'],
    ['a negative length', 'Content-Length: -1\r\n\r\n{}', 'malformed-header'],
    ['a non-numeric length', 'Content-Length: 2x\r\n\r\n{}', 'malformed-header'],
    ['two different lengths', 'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 'malformed-header'],
    ['an empty header block', '\r\n\r\n{}', 'malformed-header'],
  ])('rejects %s', (_name, text, reason) => {
    try {
      new FrameDecoder().push(Buffer.from(text));
      expect.unreachable('should have thrown');
    } catch (error) {
      expect(error).toBeInstanceOf(FramingError);
      expect((error as FramingError).reason).toBe(reason);
    }
  });

  it('fuzz: any split of a valid stream decodes to the same messages', () => {
    const body = fc.oneof(
      fc.json(),
      fc.string({ unit: 'binary', maxLength: 200 }).map((s) => JSON.stringify({ s })),
    );
    fc.assert(
      fc.property(
        fc.array(body, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (bodies, cuts) => {
          const bytes = Buffer.concat(bodies.map((b) => encodeBody(b)));
          const decoder = new FrameDecoder();
          expect(decodeAll(decoder, split(bytes, cuts))).toEqual(bodies);
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fuzz: random bytes either decode or fail with a FramingError, never anything else, and no body exceeds the limit', () => {
    const limits = { maxHeaderBytes: 256, maxFrameBytes: 4096 };
    const noise = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      // Mostly valid streams with a corrupted or truncated tail find the edges faster.
      fc
        .tuple(fc.array(fc.json(), { maxLength: 3 }), fc.uint8Array({ maxLength: 40 }), fc.nat())
        .map(([bodies, junk, cut]) => {
          const valid = Buffer.concat(bodies.map((b) => encodeBody(b)));
          return Buffer.concat([valid.subarray(0, cut % (valid.length + 1)), Buffer.from(junk)]);
        }),
      fc.nat({ max: 1e12 }).map((n) => Buffer.from(`Content-Length: ${n}\r\n\r\n`)),
    );
    fc.assert(
      fc.property(noise, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const decoder = new FrameDecoder(limits);
        try {
          for (const chunk of split(bytes, cuts)) {
            for (const body of decoder.push(chunk)) expect(body.length).toBeLessThanOrEqual(limits.maxFrameBytes);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(FramingError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('raises its frame limit when told (a client that authenticated), and drops what it held on release', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 16 });
    const frame = encodeMessage({ jsonrpc: '2.0', method: 'm', params: { x: 'y'.repeat(40) } });
    expect(() => new FrameDecoder({ maxFrameBytes: 16 }).push(frame)).toThrow(/exceeds the limit of 16 bytes/);
    decoder.frameLimit = 1024;
    expect(decoder.push(frame)).toHaveLength(1);
    decoder.push(frame.subarray(0, 30));
    expect(decoder.bufferedBytes).toBeGreaterThan(0);
    decoder.release();
    expect(decoder.bufferedBytes).toBe(0);
    expect(() => decoder.push(frame)).toThrow();
  });
});
