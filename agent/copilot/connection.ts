/**
 * One Copilot client (one `CopilotClient` of `@github/copilot-sdk`) and its own upstream
 * connection to the CLI.
 *
 * - `connect`: the agent checks the client's token (`params.token`, the SDK's `connectionToken`)
 *   against the principals, and only then opens the upstream connection and forwards the
 *   client's `connect` with the token replaced by the agent's own (`--upstream-token`), so the
 *   SDK gets the CLI's real answer (protocol version, task kinds). Nothing reaches the CLI before.
 * - Requests: routed by `methods.ts`; session methods are checked against the session's owner,
 *   its state on this instance (loaded, expired) and the quotas, then forwarded under an
 *   upstream id of the agent's (see `upstream.ts`).
 * - From the CLI: responses go back under the client's id; `session.lifecycle` notifications only
 *   about the caller's sessions pass; `session.event` and CLI requests about sessions of another
 *   user are dropped. Turn ends (`session.idle`/`session.error`) release the turn's slot.
 */
import type { Socket } from 'node:net';
import type { AgentContext } from '../core/context.js';
import { AgentError, sessionBusy } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Session } from '../core/sessions.js';
import { sameUser, tenantOf, tenantRefusal } from '../core/tenancy.js';
import { OwnershipConflictError } from '../fleet/coordinator.js';
import type { LockLease } from '../fleet/lock.js';
import type { Coordinator, PlacementTicket } from '../fleet/types.js';
import type { ControlChannel } from './control.js';
import { CLI_AUTH_FAILED, CLI_AUTH_REQUIRED } from './control.js';
import type { FrameDecoderOptions } from './framing.js';
import { HOP_PARAM, Hop, type HopEnvelope, isNotOwner, notOwnerError, verifyHopMark, withoutNotOwner } from './hop.js';
import {
  JsonRpcError,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  paramsOf,
} from './jsonrpc.js';
import {
  endsTurn,
  OWNER_METADATA_KEY,
  OWNER_TENANT_METADATA_KEY,
  routeRequest,
  type SessionAction,
  startsNewWork,
} from './methods.js';
import type { Owner, Ownership } from './owners.js';
import { type ProtocolProblem, RpcPeer, type ValidMessage } from './peer.js';
import type { Attachment, CopilotState, Slot, Turn } from './state.js';
import { Upstream } from './upstream.js';

/** How `load()` takes the session's slot: `open()` a placement, or (in a fleet) `adopt()` an orphan. */
interface FleetAdmission {
  admit(): Promise<Session>;
  undo(): void;
  /** The placement was not needed after all (the session was already loaded here). */
  unused(): void;
}

/** What the coordinator decided for a session request: served here, or (in a fleet) forwarded. */
type FleetDecision = { kind: 'done' } | { kind: 'here'; owner?: Owner; admission?: FleetAdmission };

/** The principal of every client when the agent runs without `--principals`. */
export const ANONYMOUS_PRINCIPAL = 'anonymous';

/** Requests a client may pipeline behind its `connect` before the answer. */
const MAX_QUEUED_BEFORE_CONNECT = 64;

const EXPIRY_EXPLANATIONS: Partial<Record<string, (policy: AgentContext['policy']) => string>> = {
  'expired-idle': (p) => `was detached after ${p.sessionIdleTimeoutSeconds} s without a request (idle timeout)`,
  'expired-lifetime': (p) => `reached its lifetime of ${p.sessionLifetimeSeconds} s`,
  evicted: () => 'was detached to make room for a newer session (least-recently-used eviction)',
  drained: () => 'was detached because this instance is shutting down',
  terminated: () => 'was ended by an administrator',
};

export interface ConnectionOptions {
  context: AgentContext;
  state: CopilotState;
  /** Places new sessions and routes the others: Redis with `--redis`, the in-process one without. */
  coordinator: Coordinator;
  control: ControlChannel;
  logger: Logger;
  upstream: { host: string; port: number; token: string | undefined };
  frame: FrameDecoderOptions;
  onClosed(connection: ClientConnection): void;
}

interface ForwardOptions {
  /** The loaded session this request acts on: busy until the response. */
  session?: Session;
  /** A `session.send`: the slot belongs to the turn, which outlives the response. */
  turn?: Turn;
  /** Rewrites a successful result before the client sees it. */
  transform?: (result: unknown) => unknown | Promise<unknown>;
  /** Bookkeeping once the response is in, before the client sees it. */
  after?: (response: JsonRpcResponse) => void | Promise<void>;
  /** The upstream connection closed before the response. */
  abandoned?: () => void;
}

type Outgoing = Buffer | object;

let connectionIds = 0;

export class ClientConnection implements Attachment {
  readonly connectionId = ++connectionIds;
  private readonly peer: RpcPeer;
  private readonly log: Logger;
  private upstream: Upstream | undefined;
  private principalName: string | undefined;
  /** The principal's tenant: its own (`--principals`), else the instance's `--tenant`. */
  private tenant: string | undefined;
  private phase: 'new' | 'connecting' | 'ready' | 'closing' | 'closed' = 'new';
  private queued: JsonRpcRequest[] = [];
  /** Client request id → the connection it went out on and its id there, for `$/cancelRequest`. */
  private readonly inFlight = new Map<JsonRpcId, { upstream: Upstream; id: number }>();
  /**
   * Where new sessions go (and the quotas they meet) and where the others live, with and without
   * `--redis`: one path for both.
   */
  private readonly coordinator: Coordinator;
  /** The same coordinator with `--redis` only: hops to other agents. */
  private readonly fleet: Coordinator | undefined;
  /** The client's token, kept (never logged) to authenticate the hops to other agents as this client. */
  private clientToken: unknown;
  /** Set when this connection is a hop from another agent of the fleet (a verified mark). */
  private hopFrom: string | undefined;
  /** Owner instance → hop to its agent. */
  private readonly hops = new Map<string, Promise<Hop>>();
  /** Ids under which requests of other instances' CLIs were passed to the client → their origin. */
  private readonly hopRequests = new Map<string, { hop: Hop; id: JsonRpcId }>();
  private hopRequestIds = 0;
  /** The params of each session's last successful create/resume, to resume it on a new owner. */
  private readonly loadParams = new Map<string, unknown>();
  /** Ids of the CLI's requests waiting for the client's answer. */
  private readonly cliRequests = new Set<JsonRpcId>();
  /** Sessions this connection holds on the CLI (created or resumed here). */
  private readonly held = new Set<string>();
  private outTail: Promise<void> | undefined;
  private upstreamGone = false;
  /** The agent is closing this connection (shutdown): the upstream closing is expected. */
  private closing = false;
  private readonly closedPromise: Promise<void>;
  /** Aborted when the client's connection closes: ends what waits on its behalf (the lock queue). */
  private readonly clientGone = new AbortController();

  constructor(
    socket: Socket,
    private readonly options: ConnectionOptions,
  ) {
    this.log = options.logger.child({ connection: this.connectionId });
    this.coordinator = options.coordinator;
    this.fleet = this.coordinator.mode === 'redis' ? this.coordinator : undefined;
    let closed: () => void = () => {};
    this.closedPromise = new Promise((resolve) => {
      closed = resolve;
    });
    this.peer = new RpcPeer(
      socket,
      {
        onMessage: (message, body) => this.onClientMessage(message, body),
        onProblem: (problem) => this.onClientProblem(problem),
        onClose: () => {
          this.onClientClose();
          closed();
        },
      },
      options.frame,
    );
    this.log.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'Copilot client connected');
  }

  get principal(): string | undefined {
    return this.principalName;
  }

  /** The authenticated user: its principal in its tenant (only once `connect` succeeded). */
  private get user(): Owner {
    return { principal: this.principalName!, tenant: this.tenant };
  }

  /** Resolves once the client's socket has closed. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  /** Ends both connections (the CLI unloads what only this connection held, saving its state). */
  close(): void {
    this.closing = true;
    this.peer.end();
    this.upstream?.close();
    this.closeHops();
    setTimeout(() => this.peer.destroy(), 2000).unref();
  }

  /** Attachment: lets go of the session on the CLI, for an expiry, eviction or drain. */
  detachUpstream(sessionId: string): Promise<void> {
    this.held.delete(sessionId);
    const upstream = this.upstream;
    if (!upstream || upstream.isClosed) return Promise.resolve();
    return upstream.call('session.detach', { sessionId }, AbortSignal.timeout(5000)).then(
      () => {
        this.log.debug({ sessionId }, 'detached the session on the Copilot CLI');
      },
      (error: unknown) => {
        this.log.warn({ sessionId, err: errorText(error) }, 'could not detach the session on the Copilot CLI');
      },
    );
  }

  // ---- from the client -------------------------------------------------------------------

  private onClientMessage(message: ValidMessage, body: Buffer): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    if (message.kind === 'request') this.onRequest(message.message);
    else if (message.kind === 'response') this.onClientResponse(message.message, body);
    else this.onClientNotification(message.message);
  }

  private onRequest(request: JsonRpcRequest): void {
    if (request.method === 'connect') {
      void this.onConnect(request).catch((error: unknown) => this.internalError(request, error));
      return;
    }
    if (this.phase === 'connecting') {
      if (this.queued.length >= MAX_QUEUED_BEFORE_CONNECT) {
        this.reject(request.id, new AgentError('BAD_REQUEST', 'too many requests sent before connect was answered'));
      } else {
        this.queued.push(request);
      }
      return;
    }
    if (this.phase !== 'ready') {
      this.reject(
        request.id,
        new AgentError('UNAUTHENTICATED', `${JSON.stringify(request.method)} before connect: send connect first`),
      );
      return;
    }
    this.dispatch(request);
  }

  private dispatch(request: JsonRpcRequest): void {
    const params = paramsOf(request);
    const route = routeRequest(request.method, params);
    if (route.kind === 'refused') {
      this.reject(request.id, route.error);
      return;
    }
    if (route.kind === 'connect') return;
    const slot = this.options.state.acquireSlot();
    if (!slot) {
      const limit = this.options.context.load.limit;
      this.reject(
        request.id,
        new AgentError('CONCURRENCY_LIMIT_REACHED', `this instance already serves its limit of ${limit} requests`, {
          details: { limit },
        }),
      );
      return;
    }
    switch (route.kind) {
      case 'global':
        this.forward(request, slot);
        return;
      case 'session-list':
        this.forward(request, slot, { transform: (result) => this.filterList(result) });
        return;
      case 'session-pointer':
        this.forward(request, slot, { transform: (result) => this.filterPointer(result) });
        return;
      case 'session':
        this.handleSessionRequest(request, route.sessionId, route.action, slot, false);
        return;
    }
  }

  /** `onSessionRequest`, its failure answered; `retried`: a hop's owner answered "not the owner" once. */
  private handleSessionRequest(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    retried: boolean,
  ): void {
    this.onSessionRequest(request, sessionId, action, slot, retried).catch((error: unknown) => {
      slot.release();
      if (error instanceof AgentError) this.reject(request.id, error);
      else this.internalError(request, error);
    });
  }

  private async onSessionRequest(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    retried = false,
  ): Promise<void> {
    const { context, state } = this.options;
    if (context.draining && startsNewWork(action)) {
      throw new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions or turns');
    }
    const decision = await this.routeSession(request, sessionId, action, slot, this.coordinator, retried);
    if (decision.kind === 'done') return;
    const owner = decision.owner ?? (await this.authorize(sessionId, action));
    switch (action) {
      case 'create':
      case 'resume':
        await this.load(request, sessionId, action, slot, owner, decision.admission);
        return;
      case 'delete':
        this.forward(request, slot, {
          after: (response) => {
            const result = response.result as { success?: unknown } | undefined;
            if (response.error || result?.success === false) return;
            this.held.delete(sessionId);
            this.loadParams.delete(sessionId);
            context.sessions.end(sessionId, 'deleted');
            this.log.info({ sessionId, principal: this.principal }, 'Copilot session deleted');
          },
        });
        return;
      case 'detach':
        if (!state.isAttached(sessionId, this)) {
          // Already let go of (expiry, eviction): the client's wish holds; the CLI has nothing to do.
          slot.release();
          this.emit({ jsonrpc: '2.0', id: request.id, result: { success: true } });
          return;
        }
        this.forward(request, slot, {
          after: (response) => {
            if (response.error) return;
            this.held.delete(sessionId);
            state.letGo(sessionId, this, 'detached');
          },
        });
        return;
      case 'unloaded-ok':
        this.forward(request, slot);
        return;
      case 'send':
        await this.send(request, this.loadedSession(sessionId), slot);
        return;
      case 'loaded': {
        const session = this.loadedSession(sessionId);
        context.sessions.beginRequest(session);
        this.forward(request, slot, { session });
        return;
      }
    }
  }

  /**
   * Whether this connection's user may act on the session; returns the session's owner: the
   * loaded session's, else the one recorded with its saved state. A session nobody owns yet
   * (absent) is the caller's to create.
   */
  private async authorize(sessionId: string, action: SessionAction): Promise<Owner> {
    const loaded = this.options.context.sessions.get(sessionId);
    if (loaded) return this.checkOwner(sessionId, ownerOf(loaded), action);
    const ownership = await this.ownership(sessionId);
    if (ownership.state === 'absent') return this.user;
    return this.checkOwner(sessionId, ownership.state === 'owned' ? ownership.owner : undefined, action);
  }

  /**
   * Whether this connection's user may create the session: only an id that holds nothing to lose.
   * Another user's session is refused as for any call; the caller's own session that exists —
   * loaded here, or saved on the CLI with history — is refused with SESSION_EXISTS, as a fleet
   * refuses the caller's own session held by another agent, since the CLI would replace it and
   * lose its history: the way back to it is `session.resume`. The owner may create again an id
   * whose session was deleted, or never received a message (the CLI did not save it, so it could
   * not be resumed). Returns the new session's owner: the caller.
   */
  private async authorizeCreate(sessionId: string): Promise<Owner> {
    const loaded = this.options.context.sessions.get(sessionId);
    if (loaded) {
      this.checkOwner(sessionId, ownerOf(loaded), 'create');
      throw alreadyYours(sessionId);
    }
    const ownership = await this.ownership(sessionId);
    if (ownership.state === 'absent') return this.user;
    const owner = this.checkOwner(sessionId, ownership.state === 'owned' ? ownership.owner : undefined, 'create');
    if (await this.savedWithHistory(sessionId)) throw alreadyYours(sessionId);
    return owner;
  }

  /**
   * Whether the CLI holds the session's saved state with history: `sessions.getMetadata` answers a
   * `session` only then (not for a deleted session, nor one that never received a message). Asked
   * on the agent's own connection; when the CLI cannot tell, the create is refused rather than
   * risk replacing a session.
   */
  private async savedWithHistory(sessionId: string): Promise<boolean> {
    let result: unknown;
    try {
      result = await this.options.control.call('sessions.getMetadata', { sessionId });
    } catch (error) {
      this.log.warn({ sessionId, err: errorText(error) }, 'could not check whether a Copilot session is saved');
      throw new AgentError(
        'UPSTREAM_UNAVAILABLE',
        `the agent could not check whether session ${JSON.stringify(sessionId)} is saved on the CLI (sessions.getMetadata failed)`,
        { details: { sessionId } },
      );
    }
    return (result as { session?: unknown } | null)?.session != null;
  }

  /**
   * Whether this connection's user may act on a session whose owner is `owner` (undefined: the
   * session records none); returns the owner. A user is a principal in its tenant: a caller of
   * another tenant is refused whatever its name, as on the HTTP front — a principal of the same
   * name in another tenant (or without a tenant) is another user — and collaborative sessions are
   * shared within their tenant only.
   */
  private checkOwner(sessionId: string, owner: Owner | undefined, action: SessionAction): Owner {
    if (owner === undefined) {
      throw new AgentError(
        'SESSION_FORBIDDEN',
        `session ${JSON.stringify(sessionId)} was not created through the agent and cannot be used through it`,
        { details: { sessionId } },
      );
    }
    if (owner.tenant !== this.tenant) throw anotherUsers(sessionId);
    if (owner.principal === this.principal) return owner;
    // Collaborative sessions: anyone who knows the id may join and write; only the owner deletes.
    if (this.options.state.collaborative && action !== 'delete' && action !== 'create') return owner;
    throw anotherUsers(sessionId);
  }

  /**
   * The answer to a create or resume that lost the fleet registry to a session registered first
   * (on another agent, or by a concurrent call): another user's (or tenant's) session is refused
   * as it is on a single agent; the caller's own session exists already, so it is to be resumed.
   */
  private registeredElsewhere(
    sessionId: string,
    action: 'create' | 'resume',
    holder: OwnershipConflictError['holder'],
  ): AgentError {
    if (holder.principal === undefined) return anotherUsers(sessionId);
    // Throws SESSION_FORBIDDEN for another user's (or tenant's) session, as for one loaded here.
    this.checkOwner(sessionId, { principal: holder.principal, tenant: holder.tenant }, action);
    if (action === 'create') return alreadyYours(sessionId);
    return new AgentError(
      'SESSION_EXISTS',
      `session ${JSON.stringify(sessionId)} was resumed on another instance at the same time, and lives there now`,
      { details: { sessionId } },
    );
  }

  private async ownership(sessionId: string): Promise<Ownership> {
    try {
      return await this.options.state.owners.resolve(sessionId);
    } catch (error) {
      this.log.warn({ sessionId, err: errorText(error) }, 'could not read the owner of a Copilot session');
      throw new AgentError('UPSTREAM_UNAVAILABLE', 'the agent could not check who owns this session');
    }
  }

  /** The session, loaded on this instance; otherwise why not, as the error the client gets. */
  private loadedSession(sessionId: string): Session {
    const { sessions, policy } = this.options.context;
    const found = sessions.lookup(sessionId);
    if (found.state === 'active') return found.session;
    const explain = found.state === 'ended' ? EXPIRY_EXPLANATIONS[found.reason] : undefined;
    if (found.state === 'ended' && explain) {
      throw new AgentError(
        'SESSION_EXPIRED',
        `session ${JSON.stringify(sessionId)} ${explain(policy)}; its state is saved, so session.resume continues it; otherwise`,
        { details: { sessionId, reason: found.reason } },
      );
    }
    throw new AgentError(
      'SESSION_NOT_FOUND',
      `session ${JSON.stringify(sessionId)} is not loaded on this instance: session.resume it first; otherwise`,
      { details: { sessionId } },
    );
  }

  /** `session.create` / `session.resume`: takes a slot of the session quota unless it is loaded already. */
  private async load(
    request: JsonRpcRequest,
    sessionId: string,
    action: 'create' | 'resume',
    slot: Slot,
    owner: Owner,
    admission?: FleetAdmission,
  ): Promise<void> {
    const { context, state } = this.options;
    const principal = this.principal!;
    let session = context.sessions.get(sessionId);
    let admitting = admission;
    if (!session && !admitting) {
      // Routed to this instance as loaded, it ended since (its lifetime ran out meanwhile): it is
      // placed again, like any session that is not loaded.
      const placed = await this.placeNew(request, sessionId, action, slot, this.coordinator);
      if (placed.kind === 'done') return;
      admitting = placed.admission;
      session = context.sessions.get(sessionId);
    }
    let reserved = false;
    let bound = owner;
    if (session) {
      admitting?.unused();
      // Loaded since the owner check (a concurrent create or resume of the same id got here
      // first): it belongs to whoever loaded it, so check again against that owner. A create
      // racing another create is refused here — another user's as such, the caller's own with
      // SESSION_EXISTS — never let through to replace the session on the CLI.
      bound = this.checkOwner(sessionId, ownerOf(session), action);
      if (action === 'create') throw alreadyYours(sessionId);
    } else if (admitting) {
      // The coordinator creates the table entry (slot, principal) before the CLI is asked.
      session = await admitting.admit();
      reserved = true;
    } else {
      throw new Error(`session ${JSON.stringify(sessionId)} was neither loaded nor placed`);
    }
    const previousOwner = state.owners.known(sessionId);
    // Bound now, so the CLI's lifecycle notifications about the new session already reach its owner.
    if (action === 'create') state.owners.bind(sessionId, bound);
    const undo = () => {
      if (reserved) admitting?.undo();
      if (action === 'create' && reserved) {
        if (previousOwner === undefined) state.owners.forget(sessionId);
        else state.owners.bind(sessionId, previousOwner);
      }
    };
    context.sessions.beginRequest(session);
    this.forward(request, slot, {
      session,
      abandoned: undo,
      after: async (response) => {
        if (response.error) {
          undo();
          return;
        }
        this.held.add(sessionId);
        this.loadParams.set(sessionId, request.params);
        state.attach(sessionId, this, this.user, bound);
        if (action === 'create') {
          context.metrics.sessionsCreated.inc({ front: 'copilot' });
          await this.persistOwner(sessionId, bound);
        }
        this.log.info(
          { sessionId, principal, ...(bound.principal !== principal ? { owner: bound.principal } : {}) },
          action === 'create' ? 'Copilot session created' : 'Copilot session resumed',
        );
        // Ended (its lifetime ran out) while it was loading: let go of it at once.
        if (!context.sessions.get(sessionId)) void this.detachUpstream(sessionId);
      },
    });
  }

  // ---- placement and routing (the coordinator) -------------------------------------------

  /**
   * Where a session request is served: here, or (in a fleet) on the owner's agent through a hop.
   * New sessions — a create, a resume of a session not loaded anywhere — are placed by the
   * coordinator, which enforces the quotas per principal and tenant the same way with and without
   * Redis; others are routed, locally owned ones with no Redis command. A hop's requests are never
   * forwarded again (`routeHopSession`). `retried`: an owner answered "not the owner" once already,
   * so a second such answer goes to the client.
   */
  private async routeSession(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    fleet: Coordinator,
    retried: boolean,
  ): Promise<FleetDecision> {
    if (action === 'create') return this.placeNew(request, sessionId, action, slot, fleet);
    if (this.hopFrom) return this.routeHopSession(request, sessionId, action, slot, fleet);
    const route = await fleet.route(sessionId);
    switch (route.kind) {
      case 'local':
        return { kind: 'here' };
      case 'remote':
        await this.forwardRemote(request, sessionId, action, slot, route, {
          reroute: retried ? undefined : () => this.handleSessionRequest(request, sessionId, action, slot, true),
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
      this.options.context.sessions.lookup(sessionId).state !== 'active'
    )
      return this.placeNew(request, sessionId, action, slot, fleet);
    const route = await fleet.routeHop(sessionId);
    switch (route.kind) {
      case 'local':
        return { kind: 'here' };
      case 'adopt':
        return this.adoptHere(request, sessionId, action, fleet);
      case 'not-owner':
        throw notOwnerError(sessionId, this.options.context.config.instanceId);
    }
  }

  private async placeNew(
    request: JsonRpcRequest,
    sessionId: string,
    action: 'create' | 'resume',
    slot: Slot,
    fleet: Coordinator,
  ): Promise<{ kind: 'done' } | { kind: 'here'; owner: Owner; admission: FleetAdmission }> {
    const principal = this.principal!;
    const owner = action === 'create' ? await this.authorizeCreate(sessionId) : await this.authorize(sessionId, action);
    let ticket: PlacementTicket;
    if (this.hopFrom) {
      // Placed by the forwarding agent, which reserved this instance's slot.
      const envelope = (request as JsonRpcRequest & { sessionfleet?: HopEnvelope }).sessionfleet;
      ticket = {
        reservationId: typeof envelope?.reservation === 'string' ? envelope.reservation : undefined,
        principal,
        tenant: this.tenant,
      };
    } else {
      const placement = await fleet.place({ principal, tenant: this.tenant });
      if (placement.kind === 'remote') {
        await this.forwardRemote(request, sessionId, action, slot, placement, {
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
              throw this.registeredElsewhere(sessionId, action, error.holder);
            throw error;
          }),
        undo: () => void this.options.context.sessions.end(sessionId, 'deleted'),
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
      owner = await this.authorize(sessionId, action);
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
    const upstream = this.upstream;
    const params = this.loadParams.get(sessionId) ?? { sessionId };
    try {
      if (!upstream) throw new Error('no connection to the Copilot CLI');
      await upstream.call('session.resume', params, AbortSignal.timeout(30_000));
    } catch (error) {
      await fleet.abandon(sessionId);
      this.log.warn({ sessionId, err: errorText(error) }, 'could not resume a session whose owner died');
      throw new AgentError('UPSTREAM_UNAVAILABLE', `the agent could not resume session ${JSON.stringify(sessionId)}`, {
        details: { sessionId },
      });
    }
    await fleet.adopt(sessionId);
    this.held.add(sessionId);
    this.options.state.attach(sessionId, this, this.user, owner);
    this.log.info({ sessionId, method: request.method }, 'Copilot session re-homed here after its owner died');
    return { kind: 'here', owner };
  }

  /**
   * Sends a session request to the owner's agent over this connection's hop to it. `envelope`:
   * what the hop carries beside the params (a placement's reservation); `failed`: called when the
   * owner could not be reached; `reroute`: called instead of answering the client when the owner
   * answers "not the owner" (the route is forgotten first), for the request to be routed once more.
   */
  private async forwardRemote(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    target: { instanceId: string; advertise: string },
    options: { envelope?: HopEnvelope; failed?: () => unknown; reroute?: () => void } = {},
  ): Promise<void> {
    const { envelope, failed, reroute } = options;
    const fleet = this.fleet!;
    let hop: Hop;
    try {
      hop = await this.hopTo(target);
    } catch (error) {
      fleet.forget(sessionId);
      await failed?.();
      this.log.warn({ sessionId, instance: target.instanceId, err: errorText(error) }, 'cannot reach the owner agent');
      throw new AgentError('UPSTREAM_UNAVAILABLE', `the agent cannot reach instance ${target.instanceId}`, {
        retryAfterSeconds: 1,
        details: { sessionId, instanceId: target.instanceId },
      });
    }
    if (action !== 'create' && action !== 'resume' && action !== 'delete' && !hop.attached.has(sessionId)) {
      // The owner's CLI sends a session's events only to connections holding it: hold it on the hop.
      try {
        await hop.upstream.call(
          'session.resume',
          this.loadParams.get(sessionId) ?? { sessionId },
          AbortSignal.timeout(30_000),
        );
        hop.attached.add(sessionId);
      } catch (error) {
        if (!(error instanceof JsonRpcError) || isNotOwner(error)) fleet.forget(sessionId);
        if (reroute && error instanceof JsonRpcError && isNotOwner(error)) {
          reroute();
          return;
        }
        slot.release();
        this.emit(this.relayedError(request.id, error));
        return;
      }
    }
    const started = performance.now();
    const upstreamId = hop.upstream.forward(
      request.method,
      request.params,
      (response) => {
        this.inFlight.delete(request.id);
        if (response?.error && isNotOwner(response.error)) {
          fleet.forget(sessionId);
          hop.attached.delete(sessionId);
          if (reroute) {
            // The owner's agent does not hold it and the registry does not give it to it: the
            // route was stale. Routed once more, by this agent (never forwarded twice).
            reroute();
            return;
          }
        }
        slot.release();
        if (!response) {
          fleet.forget(sessionId);
          void failed?.();
          this.reject(
            request.id,
            new AgentError('UPSTREAM_UNAVAILABLE', `the connection to instance ${target.instanceId} closed`, {
              retryAfterSeconds: 1,
              details: { sessionId, instanceId: target.instanceId },
            }),
          );
          return;
        }
        this.options.state.durations[response.error ? 'error' : 'ok'].observe((performance.now() - started) / 1000);
        if (response.error) {
          if ((response.error.data as { code?: unknown } | undefined)?.code === 'SESSION_NOT_FOUND')
            fleet.forget(sessionId);
          this.emit({ jsonrpc: '2.0', id: request.id, error: withoutNotOwner(response.error) });
          return;
        }
        if (action === 'create' || action === 'resume') {
          hop.attached.add(sessionId);
          this.loadParams.set(sessionId, request.params);
        } else if (action === 'delete' || action === 'detach') {
          hop.attached.delete(sessionId);
          if (action === 'delete') this.loadParams.delete(sessionId);
        }
        this.emit(ok(request.id, response.result));
      },
      envelope as Record<string, unknown> | undefined,
    );
    if (upstreamId !== undefined) this.inFlight.set(request.id, { upstream: hop.upstream, id: upstreamId });
  }

  private relayedError(id: JsonRpcId, error: unknown): object {
    if (error instanceof JsonRpcError) {
      const relayed: JsonRpcErrorObject = { code: error.code, message: error.message };
      if (error.data !== undefined) relayed.data = error.data;
      return { jsonrpc: '2.0', id, error: withoutNotOwner(relayed) };
    }
    return this.errorMessage(id, new AgentError('UPSTREAM_UNAVAILABLE', 'the owner agent did not answer'));
  }

  /** This connection's hop to an instance's agent, opened on first use. */
  private async hopTo(target: { instanceId: string; advertise: string }): Promise<Hop> {
    const existing = this.hops.get(target.instanceId);
    if (existing) {
      const hop = await existing.catch(() => undefined);
      if (hop && !hop.upstream.isClosed) return hop;
      if (this.hops.get(target.instanceId) === existing) this.hops.delete(target.instanceId);
    }
    const hints = this.fleet?.hints;
    if (!hints) throw new Error('no fleet key known yet');
    let opened: Hop | undefined;
    const attempt = Hop.open(
      target,
      { token: this.clientToken, hints, self: this.options.context.config.instanceId },
      {
        onRequest: (req) => {
          if (!opened) return;
          const id = `sessionfleet-hop-${++this.hopRequestIds}`;
          this.hopRequests.set(id, { hop: opened, id: req.id });
          this.emit({ ...req, id });
        },
        onNotification: (_note, body) => this.emit(body),
        onProblem: (problem) =>
          this.log.warn(
            { instance: target.instanceId, reason: problem.reason },
            'hop to another agent: protocol problem',
          ),
        onClose: () => {
          if (this.hops.get(target.instanceId) === attempt) this.hops.delete(target.instanceId);
          for (const id of opened?.attached ?? []) this.fleet?.forget(id);
          for (const [id, pending] of this.hopRequests) if (pending.hop === opened) this.hopRequests.delete(id);
        },
      },
    ).then((hop) => {
      opened = hop;
      return hop;
    });
    this.hops.set(target.instanceId, attempt);
    attempt.catch(() => {
      if (this.hops.get(target.instanceId) === attempt) this.hops.delete(target.instanceId);
    });
    return attempt;
  }

  private closeHops(): void {
    for (const hop of this.hops.values())
      hop.then(
        (h) => h.upstream.close(),
        () => {},
      );
    this.hops.clear();
  }

  /**
   * Records the owner — its principal, and its tenant if it has one — with the session's state on
   * the CLI, where a restarted agent finds it.
   */
  private async persistOwner(sessionId: string, owner: Owner): Promise<void> {
    try {
      await this.options.control.call('session.metadata.updateClientMetadata', {
        sessionId,
        // An id created again (after a delete) by its owner keeps no tenant of an earlier record.
        remove: [OWNER_TENANT_METADATA_KEY],
        set: {
          [OWNER_METADATA_KEY]: owner.principal,
          ...(owner.tenant !== undefined ? { [OWNER_TENANT_METADATA_KEY]: owner.tenant } : {}),
        },
      });
    } catch (error) {
      this.log.warn(
        { sessionId, err: errorText(error) },
        'could not record the owner with the Copilot session: after an agent restart nobody can resume it',
      );
    }
  }

  private async send(request: JsonRpcRequest, session: Session, slot: Slot): Promise<void> {
    const { state } = this.options;
    if (!state.collaborative) {
      this.forward(request, slot, { turn: state.beginTurn(session, slot) });
      return;
    }
    await this.sendUnderLock(request, session, slot);
  }

  /**
   * A collaborative send: waits in line for the session's lock — the coordinator's, so the same
   * lock and the same answers with and without `--redis` (in-process `MemoryLock`, or the fleet's
   * Redis lock: FIFO, bounded wait, renewed while the turn runs) — and holds it until the turn
   * ends. A send whose client goes away while it waits leaves the line at once. The CLI cannot
   * check a fencing token, so this agent — where every write to the session lands — checks it
   * (`fence.admit`) before the write.
   */
  private async sendUnderLock(request: JsonRpcRequest, session: Session, slot: Slot): Promise<void> {
    const { state } = this.options;
    const { lock, fence } = this.coordinator;
    const gone = this.clientGone.signal;
    let lease: LockLease;
    try {
      lease = await lock.acquire(session.id, { waitMs: state.lockWaitMs, signal: gone });
    } catch (error) {
      if (gone.aborted) {
        this.log.debug({ sessionId: session.id }, 'a waiting send left the lock queue: its client went away');
        slot.release();
        return;
      }
      if (error instanceof AgentError && error.code === 'SESSION_BUSY') {
        // An ended session says so rather than "busy".
        this.loadedSession(session.id);
        throw sessionBusy(session.id, 'another write holds its lock', error.retryAfterSeconds);
      }
      throw error;
    }
    if (gone.aborted) {
      // Granted as the client left: nobody is there to write for.
      void lease.release();
      slot.release();
      return;
    }
    let current: Session;
    try {
      if (!fence.admit(session.id, lease.token)) throw sessionBusy(session.id, 'a newer writer holds its lock', 1);
      // The session may have ended while this send waited for the lock.
      current = this.loadedSession(session.id);
    } catch (error) {
      void lease.release();
      throw error;
    }
    const turn = state.beginTurn(current, slot, () => void lease.release());
    this.forward(request, slot, { turn });
  }

  private onClientResponse(response: JsonRpcResponse, body: Buffer): void {
    // The answer to a request another instance's CLI sent through a hop: back under its own id.
    const fromHop = typeof response.id === 'string' ? this.hopRequests.get(response.id) : undefined;
    if (fromHop) {
      this.hopRequests.delete(response.id as string);
      fromHop.hop.upstream.send({ ...response, id: fromHop.id });
      return;
    }
    // Only answers to requests the CLI sent on this connection pass.
    if (!this.upstream || response.id === null || !this.cliRequests.delete(response.id)) {
      this.log.debug({ id: response.id }, 'dropped a response to no pending CLI request');
      return;
    }
    this.upstream.sendBody(body);
    this.throttleClientIfUpstreamFull();
  }

  private onClientNotification(notification: JsonRpcNotification): void {
    if (notification.method !== '$/cancelRequest' || !this.upstream) return;
    const id = paramsOf(notification).id;
    const target = id === undefined ? undefined : this.inFlight.get(id as JsonRpcId);
    if (target !== undefined) {
      target.upstream.send({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id: target.id } });
    }
  }

  private async onConnect(request: JsonRpcRequest): Promise<void> {
    const { context, upstream: target } = this.options;
    const params = paramsOf(request);
    const identity = context.principals
      ? context.principals.identify(params.token)
      : { principal: ANONYMOUS_PRINCIPAL, tenant: undefined };
    if (identity === undefined) {
      const reason = params.token === undefined ? 'no token' : 'an unknown token';
      this.log.warn({ remote: this.peer.socket.remoteAddress }, `refused a Copilot client: connect carried ${reason}`);
      this.rejectAndClose(
        request.id,
        new AgentError('UNAUTHENTICATED', `connect carried ${reason} (the SDK sends its connectionToken)`),
      );
      return;
    }
    const principal = identity.principal;
    const tenant = tenantOf(identity.tenant, context.config);
    const forbidden = tenantRefusal(context.policy, context.config, { principal, tenant });
    if (forbidden) {
      this.log.warn({ principal, tenant }, 'refused a Copilot client of another tenant');
      this.rejectAndClose(request.id, forbidden);
      return;
    }
    if (this.phase === 'new' && params[HOP_PARAM] !== undefined) {
      // Only another agent of the fleet can sign the mark; a client that sends one is refused.
      const mark = this.fleet
        ? verifyHopMark(this.fleet.hints, context.config.instanceId, params[HOP_PARAM])
        : ({ ok: false, reason: 'this agent is not part of a fleet (no --redis)' } as const);
      if (!mark.ok) {
        this.log.warn({ remote: this.peer.socket.remoteAddress, reason: mark.reason }, 'refused an agent-to-agent hop');
        this.rejectAndClose(request.id, new AgentError('UNAUTHENTICATED', `connect carried an invalid ${mark.reason}`));
        return;
      }
      this.hopFrom = mark.from;
    }
    if (this.phase !== 'new') {
      if (principal !== this.principal || tenant !== this.tenant) {
        this.rejectAndClose(request.id, new AgentError('UNAUTHENTICATED', 'a connection cannot change its user'));
      } else if (this.phase === 'connecting') {
        this.reject(request.id, new AgentError('BAD_REQUEST', 'connect is already in progress'));
      } else {
        this.forwardConnect(request, params);
      }
      return;
    }
    this.phase = 'connecting';
    this.principalName = principal;
    this.tenant = tenant;
    this.clientToken = params.token;
    try {
      this.upstream = await Upstream.open(
        target.host,
        target.port,
        {
          onRequest: (req, body) => this.onUpstreamRequest(req, body),
          onNotification: (note, body) => this.onUpstreamNotification(note, body),
          onProblem: (problem) => this.onUpstreamProblem(problem),
          onClose: () => this.onUpstreamClose(),
        },
        { ...this.options.frame, signal: AbortSignal.timeout(10_000) },
      );
    } catch (error) {
      this.log.warn({ err: errorText(error) }, 'cannot reach the Copilot CLI for a new client');
      this.rejectAndClose(request.id, new AgentError('UPSTREAM_UNAVAILABLE', 'the agent cannot reach the Copilot CLI'));
      return;
    }
    if (this.phase !== 'connecting') {
      this.upstream.destroy();
      return;
    }
    this.upstream.socket.on('drain', () => this.peer.socket.resume());
    this.peer.socket.on('drain', () => this.upstream?.socket.resume());
    this.forwardConnect(request, params);
  }

  /** Forwards the client's `connect` with the agent's token in place of the client's. */
  private forwardConnect(request: JsonRpcRequest, params: Record<string, unknown>): void {
    const { token } = this.options.upstream;
    const { token: _clientToken, [HOP_PARAM]: _hop, ...rest } = params;
    const rewritten = token === undefined ? rest : { ...rest, token };
    this.upstream!.forward('connect', rewritten, (response) => {
      if (!response || this.phase === 'closing' || this.phase === 'closed') return;
      const code = response.error?.code;
      if (code === CLI_AUTH_REQUIRED || code === CLI_AUTH_FAILED) {
        this.log.error(
          { cliCode: code },
          "the Copilot CLI refused the agent's token: set --upstream-token to the CLI's COPILOT_CONNECTION_TOKEN",
        );
        this.rejectAndClose(
          request.id,
          new AgentError('UPSTREAM_UNAVAILABLE', 'the agent could not authenticate to the Copilot CLI'),
        );
        return;
      }
      const first = this.phase === 'connecting';
      this.phase = 'ready';
      this.emit(
        response.error ? { jsonrpc: '2.0', id: request.id, error: response.error } : ok(request.id, response.result),
      );
      if (first) {
        this.log.info({ principal: this.principal }, 'Copilot client authenticated');
        const queued = this.queued;
        this.queued = [];
        for (const next of queued) this.dispatch(next);
      }
    });
  }

  // ---- to the CLI and back ---------------------------------------------------------------

  private forward(request: JsonRpcRequest, slot: Slot, options: ForwardOptions = {}): void {
    const upstream = this.upstream;
    const { context } = this.options;
    const started = performance.now();
    const finish = () => {
      if (options.session) context.sessions.endRequest(options.session);
      if (!options.turn) slot.release();
    };
    if (!upstream) {
      finish();
      options.turn?.release();
      options.abandoned?.();
      this.reject(request.id, new AgentError('UPSTREAM_UNAVAILABLE', 'the agent has no connection to the Copilot CLI'));
      return;
    }
    const upstreamId = upstream.forward(request.method, request.params, (response) => {
      this.inFlight.delete(request.id);
      if (!response) {
        finish();
        options.turn?.release();
        options.abandoned?.();
        return;
      }
      this.options.state.durations[response.error ? 'error' : 'ok'].observe((performance.now() - started) / 1000);
      finish();
      if (response.error) options.turn?.release();
      if (!options.transform && !options.after) {
        this.emit(
          response.error ? { jsonrpc: '2.0', id: request.id, error: response.error } : ok(request.id, response.result),
        );
        return;
      }
      this.emit(this.reply(request, response, options));
    });
    if (upstreamId !== undefined) {
      this.inFlight.set(request.id, { upstream, id: upstreamId });
      this.throttleClientIfUpstreamFull();
    }
  }

  private async reply(request: JsonRpcRequest, response: JsonRpcResponse, options: ForwardOptions): Promise<object> {
    try {
      await options.after?.(response);
      if (response.error) return { jsonrpc: '2.0', id: request.id, error: response.error };
      const result = options.transform ? await options.transform(response.result) : response.result;
      return ok(request.id, result);
    } catch (error) {
      // Never fall back to the unfiltered answer.
      this.log.warn({ method: request.method, err: errorText(error) }, 'could not finish a Copilot response');
      return this.errorMessage(
        request.id,
        new AgentError('UPSTREAM_UNAVAILABLE', `the agent could not complete ${request.method}`),
      );
    }
  }

  private async filterList(result: unknown): Promise<unknown> {
    const sessions = (result as { sessions?: unknown } | undefined)?.sessions;
    if (!Array.isArray(sessions)) {
      this.log.warn('session.list answered in an unknown shape: returning no sessions');
      return { sessions: [] };
    }
    const user = this.user;
    const { state } = this.options;
    const idOf = (entry: unknown) => (entry as { sessionId?: unknown } | null)?.sessionId;
    const unknown = sessions
      .map(idOf)
      .filter((id): id is string => typeof id === 'string' && state.visibleTo(user, id) === undefined);
    const read = unknown.length > 0 ? await state.owners.resolveMany(unknown) : new Map<string, Ownership>();
    const visible = (id: unknown) => {
      if (typeof id !== 'string') return false;
      const known = state.visibleTo(user, id);
      if (known !== undefined) return known;
      const ownership = read.get(id);
      return ownership?.state === 'owned' && sameUser(ownership.owner, user);
    };
    return { ...(result as object), sessions: sessions.filter((entry) => visible(idOf(entry))) };
  }

  /** `session.getLastId` / `getForeground`: another user's session id becomes "none". */
  private async filterPointer(result: unknown): Promise<unknown> {
    const id = (result as { sessionId?: unknown } | undefined)?.sessionId;
    if (typeof id !== 'string') return result;
    const user = this.user;
    const known = this.options.state.visibleTo(user, id);
    if (known === true) return result;
    if (known === undefined) {
      const ownership = await this.options.state.owners.resolve(id);
      if (ownership.state === 'owned' && sameUser(ownership.owner, user)) return result;
    }
    return {};
  }

  private onUpstreamRequest(request: JsonRpcRequest, body: Buffer): void {
    const sessionId = paramsOf(request).sessionId;
    if (typeof sessionId === 'string' && this.options.state.visibleTo(this.user, sessionId) === false) {
      this.log.warn({ method: request.method, sessionId }, "the CLI sent a request about another user's session");
      this.upstream?.send({
        jsonrpc: '2.0',
        id: request.id,
        error: { code: -32603, message: 'the agent does not deliver requests about another user’s session' },
      });
      return;
    }
    this.cliRequests.add(request.id);
    this.emit(body);
  }

  private onUpstreamNotification(notification: JsonRpcNotification, body: Buffer): void {
    const params = paramsOf(notification);
    const sessionId = params.sessionId;
    if (typeof sessionId === 'string') {
      if (notification.method === 'session.event' && endsTurn(params.event)) {
        this.options.state.turnEnded(sessionId, (params.event as { id?: unknown }).id);
      }
      const visible = this.options.state.visibleTo(this.user, sessionId);
      // Lifecycle notifications go to every connection of the CLI: only the owner's pass. Events
      // go to the connections holding the session; one about a session of unknown owner is a
      // child of the caller's own (the CLI attached this connection to it).
      if (notification.method === 'session.lifecycle' ? visible !== true : visible === false) return;
    }
    this.emit(body);
  }

  private onUpstreamProblem(problem: ProtocolProblem): void {
    if (problem.fatal) {
      this.log.error(
        { reason: problem.reason },
        'the Copilot CLI sent a malformed frame: closing this client connection',
      );
    } else {
      this.log.warn({ reason: problem.reason }, 'the Copilot CLI sent something that is not JSON-RPC');
    }
  }

  private onUpstreamClose(): void {
    this.upstreamGone = true;
    if (this.phase === 'closed' || this.closing) return;
    this.log.warn('the Copilot CLI closed the connection: closing the client connection');
    this.peer.end();
    setTimeout(() => this.peer.destroy(), 2000).unref();
  }

  // ---- the client's side -----------------------------------------------------------------

  private onClientProblem(problem: ProtocolProblem): void {
    if (problem.fatal) {
      this.log.warn(
        { principal: this.principal, remote: this.peer.socket.remoteAddress, reason: problem.reason },
        'closing a Copilot client connection: malformed frame',
      );
      this.peer.destroy();
      return;
    }
    this.emit({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: ${problem.reason}` } });
  }

  private onClientClose(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.clientGone.abort(new Error('the Copilot client closed its connection'));
    const reason = this.upstreamGone ? 'upstream-closed' : 'detached';
    for (const sessionId of [...this.held]) this.options.state.letGo(sessionId, this, reason);
    this.held.clear();
    this.queued = [];
    this.closeHops();
    // Closing the upstream makes the CLI save and unload what only this connection held; its
    // unanswered requests give their slots back.
    this.upstream?.close();
    this.log.debug({ principal: this.principal }, 'Copilot client disconnected');
    this.options.onClosed(this);
  }

  private emit(out: Outgoing | Promise<Outgoing | undefined>): void {
    if (this.outTail === undefined && !(out instanceof Promise)) {
      this.write(out);
      return;
    }
    // Something earlier is still being prepared (a filtered list): keep the order.
    const tail = (this.outTail ?? Promise.resolve())
      .then(() => out)
      .then(
        (o) => {
          if (o !== undefined) this.write(o);
        },
        (error: unknown) => this.log.error({ err: errorText(error) }, 'lost a message to a Copilot client'),
      );
    this.outTail = tail;
    void tail.finally(() => {
      if (this.outTail === tail) this.outTail = undefined;
    });
  }

  private write(out: Outgoing): void {
    if (Buffer.isBuffer(out)) this.peer.sendBody(out);
    else this.peer.send(out);
    // A client that does not read must not make the agent buffer the CLI's output without bound.
    if (this.peer.socket.writableNeedDrain) this.upstream?.socket.pause();
  }

  private throttleClientIfUpstreamFull(): void {
    if (this.upstream?.socket.writableNeedDrain) this.peer.socket.pause();
  }

  private errorMessage(id: JsonRpcId | null, error: AgentError): object {
    this.options.context.metrics.rejections.inc({ code: error.code });
    return {
      jsonrpc: '2.0',
      id,
      error: error.toJsonRpcError(this.options.context.policy.expiredSessionStatus),
    };
  }

  private reject(id: JsonRpcId, error: AgentError): void {
    this.emit(this.errorMessage(id, error));
  }

  private rejectAndClose(id: JsonRpcId, error: AgentError): void {
    this.phase = 'closing';
    this.peer.sendAndEnd(this.errorMessage(id, error));
    this.upstream?.destroy();
  }

  private internalError(request: JsonRpcRequest, error: unknown): void {
    this.log.error({ method: request.method, err: errorText(error) }, 'internal error handling a Copilot request');
    this.emit({ jsonrpc: '2.0', id: request.id, error: { code: -32603, message: 'internal error in the agent' } });
  }
}

function ok(id: JsonRpcId, result: unknown): object {
  return { jsonrpc: '2.0', id, result: result ?? null };
}

/** The owner of a loaded session: its principal in its tenant (undefined: it records none). */
function ownerOf(session: Session): Owner | undefined {
  return session.principal === undefined ? undefined : { principal: session.principal, tenant: session.tenant };
}

/** A session of another principal (or tenant): the same refusal wherever it is noticed. */
function anotherUsers(sessionId: string): AgentError {
  return new AgentError('SESSION_FORBIDDEN', `session ${JSON.stringify(sessionId)} belongs to another user`, {
    details: { sessionId },
  });
}

/** A create of the caller's own session that exists (here, saved, or on another agent): resume it. */
function alreadyYours(sessionId: string): AgentError {
  return new AgentError(
    'SESSION_EXISTS',
    `session ${JSON.stringify(sessionId)} already exists and is yours, so it cannot be created again`,
    { details: { sessionId } },
  );
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
