/**
 * A small real HTTP upstream for the collaborative-lock tests: it records every request it
 * serves — its session (`x-session`), the fencing token the agent sent, and when it started and
 * ended on the upstream's own clock — and holds each POST for `?ms=N` (100 by default) before
 * answering `{ok: true}`. A POST to `/hold` stays open until `releaseHeld()` (or the client goes).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Served {
  session: string | undefined;
  method: string;
  path: string;
  /** The `x-sessionfleet-fencing-token` header, as a number (undefined when absent). */
  token: number | undefined;
  /** The raw header, to check it is absent for reads. */
  rawToken: string | undefined;
  start: number;
  /** Undefined while the request is still running (or if the client went away first). */
  end: number | undefined;
  aborted: boolean;
}

export interface RecordingUpstream {
  readonly url: string;
  readonly served: Served[];
  /** Requests now inside the upstream. */
  inside(): number;
  releaseHeld(): void;
  close(): Promise<void>;
}

export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const served: Served[] = [];
  const held = new Set<ServerResponse>();
  let inside = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    const header = req.headers['x-sessionfleet-fencing-token'];
    const rawToken = typeof header === 'string' ? header : undefined;
    const session = req.headers['x-session'];
    const entry: Served = {
      session: typeof session === 'string' ? session : undefined,
      method: req.method ?? '',
      path: url.pathname,
      token: rawToken === undefined ? undefined : Number(rawToken),
      rawToken,
      start: performance.now(),
      end: undefined,
      aborted: false,
    };
    served.push(entry);
    inside++;
    let finished = false;
    const finish = (aborted: boolean) => {
      if (finished) return;
      finished = true;
      inside--;
      entry.aborted = aborted;
      if (!aborted) entry.end = performance.now();
    };
    res.on('close', () => finish(!res.writableFinished));
    req.resume();
    const answer = () => {
      if (res.destroyed) return;
      finish(false);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, token: entry.token ?? null }));
    };
    if (req.method === 'POST' && url.pathname === '/hold') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (req.method === 'GET') return answer();
    setTimeout(answer, Number(url.searchParams.get('ms') ?? 100));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    inside: () => inside,
    releaseHeld() {
      for (const res of held) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }
      held.clear();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The pairs of finished requests that were inside the upstream at the same time. */
export function overlapping(served: readonly Served[]): Array<[Served, Served]> {
  const done = served.filter((s) => s.end !== undefined).sort((a, b) => a.start - b.start);
  const pairs: Array<[Served, Served]> = [];
  let latest: Served | undefined;
  for (const s of done) {
    if (latest && s.start < latest.end!) pairs.push([latest, s]);
    if (!latest || s.end! > latest.end!) latest = s;
  }
  return pairs;
}
