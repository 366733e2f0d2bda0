/**
 * Carries out the routing core's decision (`agent/routing/`) for one Copilot session request:
 * serve it here, create it here under the placement's ticket, forward it over the hop to another
 * agent (`remote.ts`), or answer the refusal. No fleet rule is written here: where a session
 * lives, when it is placed, adopted, forgotten or routed once more is the router's to say.
 */
import { AgentError } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import { OwnershipConflictError } from '../fleet/types.js';
import type { Decision, Hop, Requester } from '../routing/index.js';
import type { SessionAccess } from './access.js';
import { type ClientChannel, errorText } from './channel.js';
import { type HopEnvelope, notOwnerError } from './hop.js';
import type { JsonRpcRequest } from './jsonrpc.js';
import type { SessionAction } from './methods.js';
import type { Owner } from './owners.js';
import type { RemoteHops, Reroute } from './remote.js';
import type { Slot } from './state.js';

/** How `load()` takes the session's slot: `open()` the placement's ticket. */
export interface FleetAdmission {
  admit(): Promise<Session>;
  undo(): void;
  /** The placement was not needed after all (the session was already loaded here). */
  unused(): void;
}

/**
 * A decision carried out: the request went elsewhere or was answered (`done`), or it is served
 * here — `owner` when already checked, `admission` for a session to register, `adopted` for a
 * session this resume re-homed here (given up if the resume fails).
 */
export type FleetDecision =
  | { kind: 'done' }
  | { kind: 'here'; owner?: Owner; admission?: FleetAdmission; adopted?: boolean };

export type { Reroute } from './remote.js';

export class SessionRouting {
  constructor(
    private readonly c: ClientChannel,
    private readonly access: SessionAccess,
    private readonly remote: RemoteHops,
  ) {}

  /**
   * Asks the router where the request is served (or takes `decided`, the router's retry) and
   * carries the decision out. A create is checked first — only an id that holds nothing to lose
   * is created — then placed; any other request is decided by the session it names.
   */
  async routeSession(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    reroute: Reroute,
    decided?: Promise<Decision>,
  ): Promise<FleetDecision> {
    const { router } = this.c.options;
    const checked: { owner?: Owner } = {};
    const requester = this.requester(request, sessionId, action, checked);
    let decision: Decision;
    if (decided) {
      decision = await decided;
    } else if (action === 'create') {
      checked.owner = await this.access.authorizeCreate(sessionId);
      decision = await router.place(this.c.user, this.hop(request), requester);
    } else {
      const ref = { id: sessionId, whenMissing: action === 'resume' ? 'resume' : 'serve' } as const;
      decision = await router.decide(ref, this.c.user, this.hop(request), requester);
    }
    switch (decision.kind) {
      case 'serve':
        if (decision.adopted && action !== 'resume') this.attachAdopted(request, sessionId, checked.owner!);
        return { kind: 'here', owner: checked.owner, adopted: decision.adopted && action === 'resume' };
      case 'create':
        return this.createHere(sessionId, action, decision.ticket, checked.owner);
      case 'forward':
        // The owner's agent counts the call against the caller's budget (its turn too): not twice.
        slot.releaseBudget?.();
        await this.remote.forward(request, sessionId, action, slot, decision, reroute);
        return { kind: 'done' };
      case 'expired':
        // A hop's request for a session not held here: the forwarding agent reads the mark.
        if (decision.notOwner) throw notOwnerError(sessionId, this.c.options.context.config.instanceId);
        throw decision.error;
      case 'refuse':
        throw decision.error;
      case 'left':
        slot.release();
        return { kind: 'done' };
    }
  }

  /**
   * The request's side of a decision: it leaves with the client, and when the router re-homes a
   * session here (its owner died, its state is shared) the caller is checked and — unless the
   * request is itself the resume — the session is resumed on the CLI with the params of the
   * client's last create/resume (model, provider, tools), parented on this request's span, never
   * on the trace context those params carried.
   */
  private requester(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    checked: { owner?: Owner },
  ): Requester {
    return {
      signal: this.c.clientGone.signal,
      adoptUpstream: async () => {
        checked.owner = await this.access.authorize(sessionId, action);
        if (action === 'resume') return;
        // Its saved state into the app's directory first (ADR 0019): the caller is its owner.
        await this.c.options.state.stageIn(sessionId);
        const upstream = this.c.upstream;
        const params = this.c.replayParams(sessionId, this.c.spanContext(request.id));
        try {
          if (!upstream) throw new Error('no connection to the Copilot CLI');
          await upstream.call('session.resume', params, AbortSignal.timeout(30_000));
        } catch (error) {
          this.c.log.warn({ sessionId, err: errorText(error) }, 'could not resume a session whose owner died');
          if (!this.c.options.state.isLoaded(sessionId))
            void this.c.options.state.staging?.clearApp(sessionId).catch(() => {});
          throw new AgentError(
            'UPSTREAM_UNAVAILABLE',
            `the agent could not resume session ${JSON.stringify(sessionId)}`,
            { details: { sessionId } },
          );
        }
      },
    };
  }

  /** A request another agent forwarded here: its verified mark and the reservation it carries. */
  private hop(request: JsonRpcRequest): Hop | undefined {
    const from = this.c.hopFrom;
    if (from === undefined) return undefined;
    const envelope = (request as JsonRpcRequest & { sessionfleet?: HopEnvelope }).sessionfleet;
    const reservation = typeof envelope?.reservation === 'string' ? envelope.reservation : undefined;
    return { from, reservation };
  }

  private attachAdopted(request: JsonRpcRequest, sessionId: string, owner: Owner): void {
    this.c.held.add(sessionId);
    this.c.options.state.attach(sessionId, this.c, this.c.user, owner);
    this.c.log.info({ sessionId, method: request.method }, 'Copilot session re-homed here after its owner died');
  }

  /** A placement here: the caller is checked (if not yet), then the session registered under its ticket. */
  private async createHere(
    sessionId: string,
    action: SessionAction,
    ticket: Parameters<ClientChannel['options']['router']['open']>[0],
    checked: Owner | undefined,
  ): Promise<FleetDecision> {
    const { router, context } = this.c.options;
    let owner: Owner;
    try {
      owner =
        checked ??
        (action === 'create'
          ? await this.access.authorizeCreate(sessionId)
          : await this.access.authorize(sessionId, action));
    } catch (error) {
      router.cancel(ticket);
      throw error;
    }
    const loadAction = action === 'create' ? 'create' : 'resume';
    return {
      kind: 'here',
      owner,
      admission: {
        admit: () =>
          router.open(ticket, sessionId, { principal: owner.principal }).catch((error: unknown) => {
            if (error instanceof OwnershipConflictError)
              throw this.access.registeredElsewhere(sessionId, loadAction, error.holder);
            throw error;
          }),
        undo: () => void context.sessions.end(sessionId, 'deleted'),
        unused: () => router.cancel(ticket),
      },
    };
  }
}
