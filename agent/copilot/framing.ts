/**
 * The Copilot CLI's wire framing (the LSP base protocol of `vscode-jsonrpc`): each message is a
 * header block of `Name: value` lines ended by an empty line, then exactly `Content-Length` bytes
 * of UTF-8 JSON. Peers write `Content-Length` and sometimes `Content-Type`; other headers are
 * ignored, as vscode-jsonrpc does.
 *
 * The decoder takes chunks as TCP delivers them (a frame split anywhere, several frames in one
 * chunk) and never trusts a peer with memory: a header block longer than `maxHeaderBytes` or a
 * declared body longer than `maxFrameBytes` is an error before the bytes are buffered. After an
 * error the decoder refuses further input: the caller closes that one connection.
 */

export const DEFAULT_MAX_HEADER_BYTES = 8 * 1024;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH_PREFIX = Buffer.from('Content-Length: ', 'latin1');

export type FramingErrorReason = 'header-too-large' | 'malformed-header' | 'missing-content-length' | 'frame-too-large';

export class FramingError extends Error {
  constructor(
    readonly reason: FramingErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'FramingError';
  }
}

export interface FrameDecoderOptions {
  /** Longest header block accepted, terminator included. @default 8 KiB */
  maxHeaderBytes?: number;
  /** Largest body accepted. @default 64 MiB */
  maxFrameBytes?: number;
}

export class FrameDecoder {
  private readonly maxHeaderBytes: number;
  private maxFrameBytes: number;
  /** Bytes not yet consumed. While a body is awaited they stay a list, so a large body is copied once. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the body being awaited, or -1 while reading a header. */
  private bodyLength = -1;
  private failed: FramingError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The largest body accepted from now on (a client's limit rises once it authenticated). */
  get frameLimit(): number {
    return this.maxFrameBytes;
  }

  set frameLimit(bytes: number) {
    this.maxFrameBytes = bytes;
  }

  /** Drops whatever is buffered and refuses further input: the connection is over. */
  release(): void {
    this.chunks = [];
    this.buffered = 0;
    this.failed ??= new FramingError('malformed-header', 'the connection is closed');
  }

  /**
   * Adds a chunk and returns the bodies of every frame it completed, in order. Throws
   * `FramingError` on a malformed or oversized frame; the decoder is unusable afterwards.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const bodies: Buffer[] = [];
    try {
      for (;;) {
        if (this.bodyLength < 0 && !this.readHeader()) break;
        if (this.buffered < this.bodyLength) break;
        bodies.push(this.take(this.bodyLength));
        this.bodyLength = -1;
      }
    } catch (error) {
      if (error instanceof FramingError) {
        this.failed = error;
        this.chunks = [];
        this.buffered = 0;
      }
      throw error;
    }
    return bodies;
  }

  /** Parses a complete header block if one is buffered; false when more bytes are needed. */
  private readHeader(): boolean {
    if (this.buffered === 0) return false;
    const head = this.flatten();
    const end = head.indexOf(HEADER_END);
    if (end < 0) {
      if (head.length > this.maxHeaderBytes) {
        throw new FramingError(
          'header-too-large',
          `header block longer than ${this.maxHeaderBytes} bytes without its terminating empty line`,
        );
      }
      return false;
    }
    if (end + HEADER_END.length > this.maxHeaderBytes) {
      throw new FramingError('header-too-large', `header block of ${end + 4} bytes exceeds ${this.maxHeaderBytes}`);
    }
    const length = this.singleContentLength(head, end) ?? this.parseHeaderBlock(head, end);
    if (length > this.maxFrameBytes) {
      throw new FramingError(
        'frame-too-large',
        `Content-Length ${length} exceeds the limit of ${this.maxFrameBytes} bytes`,
      );
    }
    this.take(end + HEADER_END.length);
    this.bodyLength = length;
    return true;
  }

  /**
   * The usual header block, exactly `Content-Length: <digits>`, read without building strings;
   * undefined for anything else, which the general parser handles.
   */
  private singleContentLength(head: Buffer, end: number): number | undefined {
    const prefix = CONTENT_LENGTH_PREFIX;
    if (end <= prefix.length || end > prefix.length + 15) return undefined;
    for (let i = 0; i < prefix.length; i++) if (head[i] !== prefix[i]) return undefined;
    let n = 0;
    for (let i = prefix.length; i < end; i++) {
      const digit = head[i]! - 48;
      if (digit < 0 || digit > 9) return undefined;
      n = n * 10 + digit;
    }
    return n;
  }

  private parseHeaderBlock(head: Buffer, end: number): number {
    let length: number | undefined;
    for (const line of head.toString('latin1', 0, end).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new FramingError('malformed-header', `malformed header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      if (name !== 'content-length') continue;
      const value = line.slice(colon + 1).trim();
      if (!/^\d{1,15}$/.test(value)) {
        throw new FramingError('malformed-header', `Content-Length ${JSON.stringify(value)} is not a byte count`);
      }
      const n = Number(value);
      if (length !== undefined && length !== n) {
        throw new FramingError('malformed-header', 'two different Content-Length headers');
      }
      length = n;
    }
    if (length === undefined) throw new FramingError('missing-content-length', 'header block without Content-Length');
    return length;
  }

  /** Joins the buffered chunks into one (cheap when there is one already). */
  private flatten(): Buffer {
    if (this.chunks.length !== 1) {
      const joined = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [joined];
    }
    return this.chunks[0]!;
  }

  /** Removes and returns the first `n` buffered bytes. */
  private take(n: number): Buffer {
    const all = this.flatten();
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }
}

/** One framed message from a JSON value. `Content-Length` counts UTF-8 bytes, not characters. */
export function encodeMessage(message: unknown): Buffer {
  return encodeBody(JSON.stringify(message));
}

/** Frames an already serialized body (a string, or bytes passed through unchanged). */
export function encodeBody(body: string | Buffer): Buffer {
  const length = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
  const header = `Content-Length: ${length}\r\n\r\n`;
  const frame = Buffer.allocUnsafe(header.length + length);
  frame.write(header, 0, 'latin1');
  if (typeof body === 'string') frame.write(body, header.length, 'utf8');
  else body.copy(frame, header.length);
  return frame;
}
