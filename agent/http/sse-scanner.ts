/**
 * Finds the `endpoint` event at the start of a legacy MCP SSE stream while the bytes pass through
 * untouched. It is fed each chunk as that chunk is forwarded, keeps only the unfinished line and
 * the event being assembled, and stops for good once the event is found or its byte budget is
 * spent, so the stream is never held back and the scanner costs nothing afterwards.
 *
 * Parsing follows the SSE format (HTML Living Standard, "event stream interpretation"): lines end
 * in CRLF, LF or CR; `field: value` with one optional space; a blank line dispatches the event.
 */
import { StringDecoder } from 'node:string_decoder';

export type ScanState = 'scanning' | 'found' | 'gave-up';

export class EndpointScanner {
  private readonly decoder = new StringDecoder('utf8');
  private line = '';
  private event = '';
  private data: string[] = [];
  private bytes = 0;
  private skipLf = false;
  private atStart = true;
  private current: ScanState = 'scanning';
  private found: string | undefined;

  constructor(private readonly budgetBytes: number) {}

  get state(): ScanState {
    return this.current;
  }

  /** The `data` of the endpoint event, once found. */
  get endpoint(): string | undefined {
    return this.found;
  }

  /** Feeds the next chunk; returns the state after it. */
  push(chunk: Buffer): ScanState {
    if (this.current !== 'scanning') return this.current;
    this.bytes += chunk.length;
    let text = this.decoder.write(chunk);
    if (this.atStart && text.length > 0) {
      this.atStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a && this.skipLf && i === start) {
        // The LF of a CRLF split across two chunks.
        this.skipLf = false;
        start = i + 1;
        continue;
      }
      this.skipLf = false;
      if (c !== 0x0a && c !== 0x0d) continue;
      const line = this.line + text.slice(start, i);
      this.line = '';
      if (c === 0x0d) {
        if (text.charCodeAt(i + 1) === 0x0a) i++;
        else if (i + 1 === text.length) this.skipLf = true;
      }
      start = i + 1;
      if (this.onLine(line)) return this.current;
    }
    this.line += text.slice(start);
    if (this.bytes > this.budgetBytes) this.giveUp();
    return this.current;
  }

  /** The stream ended (or was dropped) before the event: stop looking. */
  end(): ScanState {
    if (this.current === 'scanning') this.giveUp();
    return this.current;
  }

  private giveUp(): void {
    this.current = 'gave-up';
    this.release();
  }

  private release(): void {
    this.line = '';
    this.data = [];
  }

  /** Returns true when scanning is over. */
  private onLine(line: string): boolean {
    if (line === '') {
      if (this.event === 'endpoint' && this.data.length > 0) {
        this.found = this.data.join('\n');
        this.current = 'found';
        this.release();
        return true;
      }
      this.event = '';
      this.data = [];
      return false;
    }
    if (line.charCodeAt(0) === 0x3a) return false; // a comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    return false;
  }
}
