/**
 * WebSocket (any HTTP/1.1 `Upgrade`) pass-through: the handshake goes to the instance with the
 * same header rewriting as any request; on `101` the two sockets are piped together byte for
 * byte. During the handshake the exchange holds a concurrency slot; once open it is a stream of
 * its session (no slot, keeps the session from idling) until either side closes it or the session
 * ends.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Outcome } from './exchange.js';
import { forwardedRequestHeaders } from './headers.js';
import type { HttpFrontSettings } from './options.js';
import { renderError, sendErrorOnSocket } from './reject.js';
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

export class WebSocketTunnel implements Closable {
  readonly ticket: Ticket;
  readonly started = performance.now();
  setCookie: string | undefined;
  private upstream: Duplex | undefined;
  private answered = false;
  private done = false;
  private outcome: Outcome = 'ok';

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

  reject(error: AgentError, setCookie?: string): void {
    if (this.done) return;
    this.outcome = 'rejected';
    this.host.rejected(error, this.requestId, this.ticket.session?.id);
    const { settings } = this.host;
    sendErrorOnSocket(
      this.socket,
      renderError(error, {
        jsonRpc: settings.jsonRpcErrors,
        expiredSessionStatus: settings.expiredSessionStatus,
        requestId: this.requestId,
        ...(setCookie ? { setCookie } : {}),
      }),
    );
  }

  /** Performs the upstream handshake and, on 101, joins the sockets. `head`: bytes already read past the headers. */
  open(head: Buffer): void {
    if (this.done) return;
    const { req, socket, host } = this;
    const { settings } = host;
    const headers = forwardedRequestHeaders(req, {
      upstreamHost: settings.upstreamHost,
      requestId: this.requestId,
      extra: ['connection', 'Upgrade', 'upgrade', String(req.headers.upgrade ?? 'websocket')],
    });
    const upstreamReq = httpRequest({
      host: settings.upstreamHostname,
      port: settings.upstreamPort,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
      timeout: settings.upstreamHeadersTimeoutMs,
    });
    const onClientGone = () => upstreamReq.destroy();
    socket.once('close', onClientGone);
    upstreamReq.once('timeout', () =>
      upstreamReq.destroy(Object.assign(new Error('timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
    );
    upstreamReq.once('error', (error) => {
      if (this.done) return;
      if (this.answered) {
        socket.destroy();
        return;
      }
      host.logger.warn(
        { reqId: this.requestId, sessionId: this.ticket.session?.id, err: error.message },
        'upstream handshake failed',
      );
      this.reject(upstreamError(error, settings));
      this.outcome = 'upstream-error';
    });
    upstreamReq.once('response', (response) => {
      // The upstream declined the upgrade: relay its answer, then close.
      this.answered = true;
      socket.off('close', onClientGone);
      if (this.done) {
        response.destroy();
        return;
      }
      const lines = [`HTTP/1.1 ${response.statusCode} ${response.statusMessage ?? ''}`];
      const raw = response.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        if (!SKIPPED_ON_ERROR.has(raw[i]!.toLowerCase())) lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
      if (this.setCookie) lines.push(`set-cookie: ${this.setCookie}`);
      lines.push(`x-request-id: ${this.requestId}`, 'connection: close', '', '');
      socket.write(lines.join('\r\n'));
      response.pipe(socket);
    });
    upstreamReq.once('upgrade', (response, upstreamSocket, upstreamHead) => {
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
      for (let i = 0; i < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`);
      if (this.setCookie) lines.push(`set-cookie: ${this.setCookie}`);
      lines.push(`x-request-id: ${this.requestId}`, '', '');
      socket.write(lines.join('\r\n'));
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => upstreamSocket.destroy());
      upstreamSocket.once('close', () => socket.destroy());
      socket.pipe(upstreamSocket);
      upstreamSocket.pipe(socket);
      this.ticket.toStream(this);
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
    this.upstream?.destroy();
    this.ticket.release();
    this.host.tunnelFinished(this, this.outcome, (performance.now() - this.started) / 1000);
  }
}
