/**
 * The agent's own connection to the Copilot CLI, apart from every client's: the health probe's
 * `ping` and the reads and writes of session owners go over it. Opened on first use, reopened
 * after the CLI went away.
 */
import type { Logger } from '../core/logger.js';
import { JsonRpcError } from './jsonrpc.js';
import { Upstream } from './upstream.js';

/** The CLI's answers to a `connect` without, or with a wrong, `COPILOT_CONNECTION_TOKEN`. */
export const CLI_AUTH_REQUIRED = -32001;
export const CLI_AUTH_FAILED = -32002;

export class UpstreamAuthError extends Error {
  constructor(readonly cliCode: number) {
    super(
      `the Copilot CLI refused the agent's token (${cliCode === CLI_AUTH_FAILED ? 'wrong token' : 'no token'}): set --upstream-token to the CLI's COPILOT_CONNECTION_TOKEN`,
    );
    this.name = 'UpstreamAuthError';
  }
}

/** Sends `connect` with the agent's token; maps the CLI's authentication errors to `UpstreamAuthError`. */
export async function authenticate(
  upstream: Upstream,
  token: string | undefined,
  signal?: AbortSignal,
): Promise<unknown> {
  try {
    return await upstream.call('connect', token === undefined ? {} : { token }, signal);
  } catch (error) {
    if (error instanceof JsonRpcError && (error.code === CLI_AUTH_REQUIRED || error.code === CLI_AUTH_FAILED)) {
      throw new UpstreamAuthError(error.code);
    }
    throw error;
  }
}

export class ControlChannel {
  private current: Promise<Upstream> | undefined;
  private closed = false;
  /** The refused token is logged once, not at every probe, until a connect succeeds again. */
  private authErrorLogged = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly token: string | undefined,
    private readonly logger: Logger,
  ) {}

  /** Calls a method on the CLI as the agent, within `timeoutMs`. */
  async call(method: string, params: unknown, timeoutMs = 5000, outer?: AbortSignal): Promise<unknown> {
    const signal = outer ? AbortSignal.any([outer, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    const upstream = await this.connection(signal);
    return upstream.call(method, params, signal);
  }

  close(): void {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    current?.then(
      (u) => u.close(),
      () => {},
    );
  }

  private async connection(signal: AbortSignal): Promise<Upstream> {
    if (this.closed) throw new Error('the agent is shutting down');
    if (this.current) {
      try {
        const upstream = await this.current;
        if (!upstream.isClosed) return upstream;
      } catch {
        // The last attempt failed; try again below.
      }
    }
    const attempt = this.open(signal);
    this.current = attempt;
    attempt.catch(() => {
      if (this.current === attempt) this.current = undefined;
    });
    return attempt;
  }

  private async open(signal: AbortSignal): Promise<Upstream> {
    const upstream = await Upstream.open(
      this.host,
      this.port,
      {
        onProblem: (problem) =>
          this.logger.warn({ reason: problem.reason }, 'control connection to the Copilot CLI: protocol problem'),
      },
      { signal },
    );
    try {
      await authenticate(upstream, this.token, signal);
    } catch (error) {
      upstream.destroy();
      if (error instanceof UpstreamAuthError && !this.authErrorLogged) {
        this.authErrorLogged = true;
        this.logger.error({ cliCode: error.cliCode }, error.message);
      }
      throw error;
    }
    this.authErrorLogged = false;
    return upstream;
  }
}
