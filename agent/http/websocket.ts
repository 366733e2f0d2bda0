/**
 * WebSocket (any HTTP/1.1 `Upgrade`) pass-through: the handshake goes to the instance with the
 * same header rewriting as any request; on `101` the two sockets are piped together byte for
 * byte. During the handshake the exchange holds a concurrency slot; once open it is a stream of
 * its session (no slot, keeps the session from idling) until either side closes it or the session
 * ends.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Outcome } from './exchange.js';
import { NOT_OWNER_HEADER } from './fleet.js';
import { forwardedRequestHeaders } from './headers.js';
import type { HttpFrontSettings } from './options.js';
import { challengeFor, renderError, sendErrorOnSocket } from './reject.js';
import type { Closable } from './streams.js';
import { Ticket, type TicketHost } from './ticket.js';
import { upstreamError } from './upstream.js';

export interface TunnelHost extends TicketHost {
  readonly settings: HttpFrontSettings;
  readonly logger: Logger;
  rejected(error: AgentError, requestId: string, sessionId: string | undefined): void;
  tunnelFinished(tunnel: WebSocketTunnel, outcome: Outcome, seconds: number): void;
}

/** Response headers the agent must not repeat from the upstream's handshake answer (it frames its own). */
const SKIPPED_ON_ERROR = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/**
 * In a fleet: the handshake goes to the owner agent (its `--advertise` address) instead of this
 * instance's upstream, with the signed forwarding mark; the owner serves it as a local upgrade.
 */
export interface PeerHop {
  readonly secure: boolean;
  readonly hostname: string;
  readonly port: number;
  /** The `Host` header for the owner agent. */
  readonly host: string;
  /** `[name, value]` pairs added to the handshake (the forwarding mark). */
  readonly headers: readonly string[];
  /** The owner agent could not be reached (or did not answer): what the client is told. */
  readonly unreachable: (error: Error) => AgentError;
  /** The owner answered that it does not hold the session. */
  readonly notOwner?: () => void;
  /**
   * When given, called instead of answering the client if the owner agent could not be reached
   * or said it does not hold the session, before anything reached the client: the host routes
   * the upgrade again (and opens or refuses it itself).
   */
  readonly retry?: () => void;
}

const NOTHING: ReadonlySet<string> = new Set();

/** The agents' own headers stop at the agent that relays an owner's answer. */
function skippedFrom(peer: PeerHop | undefined, name: string, skipped: ReadonlySet<string>): boolean {
  return skipped.has(name) || (peer !== undefined && name.startsWith('x-sessionfleet-'));
}

export class WebSocketTunnel implements Closable {
  readonly ticket: Ticket;
  readonly started = performance.now();
  setCookie: string | undefined;
  private upstream: Duplex | undefined;
  private answered = false;
  /** Counts handshakes: one given up for a retry is ignored from then on. */
  private generation = 0;
  private done = false;
  private outcome: Outcome = 'ok';
  /** Aborted when the tunnel finishes: ends what waits on the client's behalf. Created only when needed. */
  private controller: AbortController | undefined;

  constructor(
    private readonly host: TunnelHost,
    readonly req: IncomingMessage,
    readonly socket: Duplex,
    readonly requestId: string,
  ) {
    this.ticket = new Ticket(host);
    socket.once('close', () => this.finish());
    socket.on('error', () => socket.destroy());
  }

  get isDone(): boolean {
    return this.done;
  }

  /** The routing core's `Requester.signal`: aborts when the client's socket closes. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.done) this.controller.abort();
    return this.controller.signal;
  }

  reject(error: AgentError, setCookie?: string, headers?: Record<string, string>): void {
    if (this.done) return;
    this.outcome = 'rejected';
    this.host.rejected(error, this.requestId, this.ticket.session?.id);
    const { settings } = this.host;
    const rendered = renderError(error, {
      jsonRpc: settings.jsonRpcErrors,
      expiredSessionStatus: settings.expiredSessionStatus,
      requestId: this.requestId,
      ...(setCookie ? { setCookie } : {}),
      ...(settings.jwt ? { challenge: challengeFor(settings.jwt) } : {}),
    });
    if (headers) Object.assign(rendered.headers, headers);
    sendErrorOnSocket(this.socket, rendered);
  }

  /**
   * Performs the handshake — with this instance's upstream, or with the owner agent (`peer`) in a
   * fleet — and, on 101, joins the sockets. `head`: bytes already read past the headers.
   */
  open(head: Buffer, peer?: PeerHop): void {
    if (this.done) return;
    const { req, socket, host } = this;
    const { settings } = host;
    const generation = ++this.generation;
    const live = () => generation === this.generation;
    this.answered = false;
    const upgradeHeaders = ['connection', 'Upgrade', 'upgrade', String(req.headers.upgrade ?? 'websocket')];
    const headers = forwardedRequestHeaders(req, {
      upstreamHost: peer ? peer.host : settings.upstreamHost,
      requestId: this.requestId,
      extra: peer ? [...upgradeHeaders, ...peer.headers] : upgradeHeaders,
      dropAuthorization: !peer && settings.stripAuthorization,
    });
    const upstreamReq = (peer?.secure ? httpsRequest : httpRequest)({
      host: peer ? peer.hostname : settings.upstreamHostname,
      port: peer ? peer.port : settings.upstreamPort,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
      // The owner agent answers once its own upstream did (bounded by the same timeout), plus the hop.
      timeout: peer
        ? settings.upstreamHeadersTimeoutMs + settings.upstreamConnectTimeoutMs
        : settings.upstreamHeadersTimeoutMs,
    });
    const onClientGone = () => upstreamReq.destroy();
    socket.once('close', onClientGone);
    upstreamReq.once('timeout', () =>
      upstreamReq.destroy(Object.assign(new Error('timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
    );
    upstreamReq.once('error', (error) => {
      if (this.done || !live()) return;
      if (this.answered) {
        socket.destroy();
        return;
      }
      host.logger.warn(
        { reqId: this.requestId, sessionId: this.ticket.session?.id, err: error.message, peer: peer?.host },
        peer ? 'the owner agent did not answer the handshake' : 'upstream handshake failed',
      );
      if (peer?.retry) {
        socket.off('close', onClientGone);
        this.generation++;
        peer.retry();
        return;
      }
      this.reject(peer ? peer.unreachable(error) : upstreamError(error, settings));
      this.outcome = 'upstream-error';
    });
    upstreamReq.once('response', (response) => {
      // The upstream declined the upgrade: relay its answer, then close.
      if (!live()) {
        response.destroy();
        return;
      }
      this.answered = true;
      socket.off('close', onClientGone);
      if (this.done) {
        response.destroy();
        return;
      }
      if (peer && response.headers[NOT_OWNER_HEADER] !== undefined) {
        if (peer.retry) {
          response.destroy();
          this.generation++;
          peer.retry();
          return;
        }
        peer.notOwner?.();
      }
      const lines = [`HTTP/1.1 ${response.statusCode} ${response.statusMessage ?? ''}`];
      const raw = response.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        if (!skippedFrom(peer, raw[i]!.toLowerCase(), SKIPPED_ON_ERROR)) lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
      if (this.setCookie) lines.push(`set-cookie: ${this.setCookie}`);
      // An owner agent's answer already names the request.
      if (!peer) lines.push(`x-request-id: ${this.requestId}`);
      lines.push('connection: close', '', '');
      socket.write(lines.join('\r\n'));
      response.pipe(socket);
    });
    upstreamReq.once('upgrade', (response, upstreamSocket, upstreamHead) => {
      if (!live()) {
        upstreamSocket.destroy();
        return;
      }
      this.answered = true;
      socket.off('close', onClientGone);
      if (this.done) {
        upstreamSocket.destroy();
        return;
      }
      this.upstream = upstreamSocket;
      upstreamSocket.setTimeout(0);
      upstreamSocket.setNoDelay(true);
      const lines = [`HTTP/1.1 101 ${response.statusMessage || 'Switching Protocols'}`];
      const raw = response.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        if (!skippedFrom(peer, raw[i]!.toLowerCase(), NOTHING)) lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
      if (this.setCookie) lines.push(`set-cookie: ${this.setCookie}`);
      if (!peer) lines.push(`x-request-id: ${this.requestId}`);
      lines.push('', '');
      socket.write(lines.join('\r\n'));
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => upstreamSocket.destroy());
      upstreamSocket.once('close', () => socket.destroy());
      socket.pipe(upstreamSocket);
      upstreamSocket.pipe(socket);
      this.ticket.toStream(this, false);
    });
    upstreamReq.end();
  }

  close(): void {
    this.upstream?.destroy();
    this.socket.destroy();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.controller?.abort();
    this.upstream?.destroy();
    this.ticket.release();
    this.host.tunnelFinished(this, this.outcome, (performance.now() - this.started) / 1000);
  }
}
