/**
 * The upgrade path of the HTTP front (WebSocket and any HTTP/1.1 `Upgrade`): the request path's
 * twin for a socket instead of a response, with the same routing core decision carried out —
 * served or created here (the handshake goes to this instance's upstream), tunnelled to another
 * agent with the signed mark, or refused on the socket.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { AgentError, sessionNotFound } from '../core/errors.js';
import type { Caller } from '../core/tenancy.js';
import type { PlacementTicket } from '../fleet/types.js';
import { type Decision, type Forward, type Hop, markToHeader, type Router } from '../routing/index.js';
import type { Route } from './affinity.js';
import { FORWARDED_BY_HEADER, NOT_OWNER_HEADER } from './fleet.js';
import { type Admitted, checkTarget, type Intake, type SessionRoute } from './intake.js';
import { type TunnelHost, WebSocketTunnel } from './websocket.js';

export interface UpgradePathHost extends TunnelHost {
  readonly router: Router;
  readonly intake: Intake;
  requestStarted(): void;
  tunnelStarted(tunnel: WebSocketTunnel): void;
  internalError(target: WebSocketTunnel, error: unknown): void;
}

export class UpgradePath {
  constructor(private readonly host: UpgradePathHost) {}

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const host = this.host;
    host.requestStarted();
    const tunnel = new WebSocketTunnel(host, req, socket, host.intake.requestIdOf(req));
    host.tunnelStarted(tunnel);
    try {
      const pending = this.route(tunnel, head);
      if (pending) pending.catch((error: unknown) => host.internalError(tunnel, error));
    } catch (error) {
      host.internalError(tunnel, error);
    }
  };

  private route(tunnel: WebSocketTunnel, head: Buffer): Promise<void> | undefined {
    const { req } = tunnel;
    const { intake } = this.host;
    const hop = intake.hopOf(req, tunnel.requestId);
    const target = checkTarget(req.url);
    if (target instanceof AgentError) return void tunnel.reject(target);
    const caller = intake.callerOf(req);
    if (caller instanceof Promise) return caller.then((c) => this.routeAs(tunnel, target, hop, c, head));
    return this.routeAs(tunnel, target, hop, caller, head);
  }

  /** Routes an upgrade once its caller is known (at once, or after its token was verified). */
  private routeAs(
    tunnel: WebSocketTunnel,
    target: { path: string; query: string },
    hop: Hop | undefined,
    caller: Caller | AgentError,
    head: Buffer,
  ): Promise<void> | undefined {
    const { req } = tunnel;
    const { intake, router } = this.host;
    if (caller instanceof AgentError) return void tunnel.reject(caller);
    const route = intake.classify(req, target, true);
    switch (route.kind) {
      case 'session':
        return this.carryOut(tunnel, route, caller, router.decide(route, caller, hop, tunnel), head);
      case 'mint-cookie':
        return this.carryOut(tunnel, route, caller, router.place(caller, hop, tunnel), head);
      default:
        return void this.open(tunnel, this.host.intake.admitWithoutSession(tunnel.ticket, route, tunnel.req), head);
    }
  }

  /** Carries out the routing core's decision for an upgrade (waiting for it first if need be). */
  private carryOut(
    tunnel: WebSocketTunnel,
    route: Route,
    caller: Caller,
    decision: Decision | Promise<Decision>,
    head: Buffer,
  ): Promise<void> | undefined {
    if (decision instanceof Promise) return decision.then((d) => this.carryOut(tunnel, route, caller, d, head));
    switch (decision.kind) {
      case 'serve': {
        const admitted = this.host.intake.admitSession(tunnel.ticket, route as SessionRoute, caller, tunnel.req);
        if (admitted !== 'missing') return void this.open(tunnel, admitted, head);
        const again = this.host.router.decide(route as SessionRoute, caller, undefined, tunnel);
        return Promise.resolve(again).then((d) =>
          d.kind === 'serve' ? tunnel.reject(sessionNotFound()) : this.carryOut(tunnel, route, caller, d, head),
        );
      }
      case 'create':
        return void this.open(tunnel, this.createHere(tunnel, route, caller, decision.ticket), head);
      case 'forward':
        return void this.forward(tunnel, route, caller, decision, head);
      case 'expired':
        return void tunnel.reject(
          ...this.host.intake.expired(tunnel.req, decision),
          decision.notOwner ? { [NOT_OWNER_HEADER]: this.host.router.instanceId } : undefined,
        );
      case 'refuse':
        return void tunnel.reject(decision.error);
      case 'left':
        return undefined;
    }
  }

  private createHere(tunnel: WebSocketTunnel, route: Route, caller: Caller, ticket: PlacementTicket): Admitted {
    const { intake } = this.host;
    if (route.kind === 'session')
      return intake.createSession(tunnel.ticket, route.id, caller, tunnel.requestId, ticket);
    return intake.mintCookieSession(tunnel.ticket, caller, tunnel.req, tunnel.requestId, ticket);
  }

  /** Joins an admitted upgrade to this instance's upstream (or refuses it). */
  private open(tunnel: WebSocketTunnel, admitted: Admitted, head: Buffer): void {
    if (!admitted.ok) {
      tunnel.reject(admitted.error, this.host.intake.clearCookieFor(admitted, tunnel.req));
      return;
    }
    tunnel.setCookie = admitted.setCookie;
    tunnel.open(head);
  }

  /**
   * Sends the handshake to another agent with the signed mark. Not reachable, or "not the owner":
   * the routing core decides once more (once); otherwise the client is told.
   */
  private forward(tunnel: WebSocketTunnel, route: Route, caller: Caller, decision: Forward, head: Buffer): void {
    const url = new URL(decision.to.advertise);
    const secure = url.protocol === 'https:';
    const retry = decision.retry;
    tunnel.open(head, {
      secure,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      host: url.host,
      headers: [FORWARDED_BY_HEADER, markToHeader(decision.mark)],
      unreachable: (error) => {
        decision.failed();
        return new AgentError(
          'UPSTREAM_UNAVAILABLE',
          'the agent of the instance that holds this session is not answering',
          {
            retryAfterSeconds: 1,
            details: { cause: String((error as { code?: unknown }).code ?? error.name) },
          },
        );
      },
      notOwner: decision.failed,
      ...(retry
        ? {
            retry: () => {
              retry()
                .then((again) => this.carryOut(tunnel, route, caller, again, head))
                .catch((error: unknown) => this.host.internalError(tunnel, error));
            },
          }
        : {}),
    });
  }
}
