/**
 * Where a Copilot session request is served: here, or (in a fleet) on the owner's agent through a
 * hop (`remote.ts`). New sessions are placed by the coordinator, sessions whose owner died are
 * adopted here, and a hop's requests are served here or refused as "not the owner".
 */
import { AgentError } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import { OwnershipConflictError } from '../fleet/coordinator.js';
import type { Coordinator, PlacementTicket } from '../fleet/types.js';
import type { SessionAccess } from './access.js';
import { type ClientChannel, errorText } from './channel.js';
import { type HopEnvelope, notOwnerError } from './hop.js';
import type { JsonRpcRequest } from './jsonrpc.js';
import type { SessionAction } from './methods.js';
import type { Owner } from './owners.js';
import type { RemoteHops } from './remote.js';
import type { Slot } from './state.js';

/** How `load()` takes the session's slot: `open()` a placement, or (in a fleet) `adopt()` an orphan. */
export interface FleetAdmission {
  admit(): Promise<Session>;
  undo(): void;
  /** The placement was not needed after all (the session was already loaded here). */
  unused(): void;
}

/** What the coordinator decided for a session request: served here, or (in a fleet) forwarded. */
export type FleetDecision = { kind: 'done' } | { kind: 'here'; owner?: Owner; admission?: FleetAdmission };

export class SessionRouting {
  constructor(
    private readonly c: ClientChannel,
    private readonly access: SessionAccess,
    private readonly remote: RemoteHops,
  ) {}

  /**
   * Where a session request is served: here, or (in a fleet) on the owner's agent through a hop.
   * New sessions — a create, a resume of a session not loaded anywhere — are placed by the
   * coordinator, which enforces the quotas per principal and tenant the same way with and without
   * Redis; others are routed, locally owned ones with no Redis command. A hop's requests are never
   * forwarded again (`routeHopSession`). `retried`: an owner answered "not the owner" once already,
   * so a second such answer goes to the client.
   */
  async routeSession(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    fleet: Coordinator,
    reroute: (() => void) | undefined,
  ): Promise<FleetDecision> {
    if (action === 'create') return this.placeNew(request, sessionId, action, slot, fleet);
    if (this.c.hopFrom) return this.routeHopSession(request, sessionId, action, slot, fleet);
    const route = await fleet.route(sessionId);
    switch (route.kind) {
      case 'local':
        return { kind: 'here' };
      case 'remote':
        await this.remote.forward(request, sessionId, action, slot, route, {
          reroute,
        });
        return { kind: 'done' };
      case 'adopt':
        return this.adoptHere(request, sessionId, action, fleet);
      case 'gone':
        // A saved session nobody holds any more (detached, handed off and forgotten): placed anew.
        if (action === 'resume') return this.placeNew(request, sessionId, action, slot, fleet);
        return { kind: 'here' };
    }
  }

  /**
   * `routeSession` for a request another agent forwarded here (a hop), which that agent placed and
   * routed: served here or refused, never forwarded again. A session not held here is taken on
   * only when the registry names this instance its owner (the forwarder's lookup re-homed it
   * here: `routeHop` → adopt); anything else — another owner, handed off, orphaned, unknown — is
   * "not the owner", and the forwarding agent routes once more. A resume that carries the
   * forwarder's reservation was placed here by it.
   */
  private async routeHopSession(
    request: JsonRpcRequest,
    sessionId: string,
    action: Exclude<SessionAction, 'create'>,
    slot: Slot,
    fleet: Coordinator,
  ): Promise<FleetDecision> {
    const envelope = (request as JsonRpcRequest & { sessionfleet?: HopEnvelope }).sessionfleet;
    if (
      action === 'resume' &&
      typeof envelope?.reservation === 'string' &&
      this.c.options.context.sessions.lookup(sessionId).state !== 'active'
    )
      return this.placeNew(request, sessionId, action, slot, fleet);
    const route = await fleet.routeHop(sessionId);
    switch (route.kind) {
      case 'local':
        return { kind: 'here' };
      case 'adopt':
        return this.adoptHere(request, sessionId, action, fleet);
      case 'not-owner':
        throw notOwnerError(sessionId, this.c.options.context.config.instanceId);
    }
  }

  async placeNew(
    request: JsonRpcRequest,
    sessionId: string,
    action: 'create' | 'resume',
    slot: Slot,
    fleet: Coordinator,
  ): Promise<{ kind: 'done' } | { kind: 'here'; owner: Owner; admission: FleetAdmission }> {
    const principal = this.c.principal!;
    const owner =
      action === 'create'
        ? await this.access.authorizeCreate(sessionId)
        : await this.access.authorize(sessionId, action);
    let ticket: PlacementTicket;
    if (this.c.hopFrom) {
      // Placed by the forwarding agent, which reserved this instance's slot.
      const envelope = (request as JsonRpcRequest & { sessionfleet?: HopEnvelope }).sessionfleet;
      ticket = {
        reservationId: typeof envelope?.reservation === 'string' ? envelope.reservation : undefined,
        principal,
        tenant: this.c.tenant,
      };
    } else {
      const placement = await fleet.place({ principal, tenant: this.c.tenant });
      if (placement.kind === 'remote') {
        await this.remote.forward(request, sessionId, action, slot, placement, {
          envelope: { reservation: placement.reservationId },
          failed: () => fleet.cancel(placement),
        });
        return { kind: 'done' };
      }
      ticket = placement;
    }
    return {
      kind: 'here',
      owner,
      admission: {
        admit: () =>
          fleet.open(ticket, sessionId, { principal: owner.principal }).catch((error: unknown) => {
            if (error instanceof OwnershipConflictError)
              throw this.access.registeredElsewhere(sessionId, action, error.holder);
            throw error;
          }),
        undo: () => void this.c.options.context.sessions.end(sessionId, 'deleted'),
        unused: () => void fleet.cancel(ticket),
      },
    };
  }

  /**
   * The session's owner died and its state is on the shared volume: this instance now owns it.
   * A `session.resume` from the client is the resume; any other call resumes it first with the
   * params of the client's last create/resume (model, provider, tools), then goes on here.
   */
  private async adoptHere(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    fleet: Coordinator,
  ): Promise<FleetDecision> {
    let owner: Owner;
    try {
      owner = await this.access.authorize(sessionId, action);
    } catch (error) {
      await fleet.abandon(sessionId);
      throw error;
    }
    if (action === 'resume') {
      return {
        kind: 'here',
        owner,
        admission: {
          admit: () => fleet.adopt(sessionId),
          undo: () => void fleet.abandon(sessionId),
          unused: () => {},
        },
      };
    }
    const upstream = this.c.upstream;
    const params = this.c.loadParams.get(sessionId) ?? { sessionId };
    try {
      if (!upstream) throw new Error('no connection to the Copilot CLI');
      await upstream.call('session.resume', params, AbortSignal.timeout(30_000));
    } catch (error) {
      await fleet.abandon(sessionId);
      this.c.log.warn({ sessionId, err: errorText(error) }, 'could not resume a session whose owner died');
      throw new AgentError('UPSTREAM_UNAVAILABLE', `the agent could not resume session ${JSON.stringify(sessionId)}`, {
        details: { sessionId },
      });
    }
    await fleet.adopt(sessionId);
    this.c.held.add(sessionId);
    this.c.options.state.attach(sessionId, this.c, this.c.user, owner);
    this.c.log.info({ sessionId, method: request.method }, 'Copilot session re-homed here after its owner died');
    return { kind: 'here', owner };
  }
}
