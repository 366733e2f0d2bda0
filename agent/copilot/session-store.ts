/**
 * The Copilot CLI's session store (ADR 0024): `~/.copilot/session-store.db`, one SQLite file per
 * CLI process, in which the CLI records every session it tracks — its prompts (`turns`), replies,
 * files and working directories — for its cross-session history tools. A session created with
 * `enableSessionStore: true` gets the model tool `session_store_sql`, which reads every session
 * the store holds; the model's `bash` reads the file itself (`sqlite3`, `strings`). The file is
 * outside a session's state directory, so staging (ADR 0019) does not carry it, and it outlives
 * the sessions it records until the instance is replaced.
 *
 * Measured with the CLI 1.0.102: a session loaded with `enableSessionStore: false` is not tracked
 * (nothing of it reaches the file, which is not even created), while an unset field keeps the
 * CLI's default, which tracks. So the agent loads every session with the store off — whoever
 * asks, including its own resumes (re-homing, hops) — and refuses a client that asks for it on.
 */
import { AgentError } from '../core/errors.js';
import { SESSION_STORE_RULES } from './method-table.js';

const CAPABILITY = 'session-store';

/**
 * Why `params` of `method` may not pass: they ask for the session store (`enableSessionStore:
 * true`, or the `session-store` capability that exposes its SQL tool). Undefined when they may.
 */
export function sessionStoreRefusal(method: string, params: Record<string, unknown>): AgentError | undefined {
  if (SESSION_STORE_RULES[method] === undefined) return undefined;
  const asked: string[] = [];
  if (params.enableSessionStore === true) asked.push('enableSessionStore: true');
  const capabilities = params.sessionCapabilities;
  if (Array.isArray(capabilities) && capabilities.includes(CAPABILITY))
    asked.push(`sessionCapabilities "${CAPABILITY}"`);
  if (asked.length === 0) return undefined;
  return new AgentError(
    'SESSION_STORE_FORBIDDEN',
    `${method} asks for the Copilot CLI's cross-session store (${asked.join(', ')}): the store is one file per CLI that records every session the CLI serves, so it would show other users' prompts; the agent keeps it off for every session`,
    { details: { method, fields: asked } },
  );
}

/**
 * Why a session load may not pass: it names its own `configDir`. The CLI then keeps that session's
 * whole state (and its session store) under that directory instead of `~/.copilot`, out of the
 * directory the agent stages and clears (ADR 0019): the state would stay on the instance for its
 * next user, and never reach the shared volume. The CLI's directories are the instance's, set by
 * whoever deploys it, not by a client.
 */
export function configDirRefusal(method: string, params: Record<string, unknown>): AgentError | undefined {
  if (SESSION_STORE_RULES[method] !== 'off' || params.configDir === undefined || params.configDir === null) {
    return undefined;
  }
  return new AgentError(
    'CONFIG_DIR_FORBIDDEN',
    `${method} sets params.configDir (${quoted(params.configDir)}): the CLI would keep the session's state there, outside the directory the agent stages and clears between users, so it would stay on the instance for the next user`,
    { details: { method, field: 'configDir' } },
  );
}

/** A client's value in a message: JSON, at most 200 characters of it. */
function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * What the agent sends to the CLI (or to a peer agent) for `params` of `method`: a session load
 * (`session.create`, `session.resume`) always with the session store off. Other methods unchanged.
 */
export function withSessionStoreOff(method: string, params: unknown): unknown {
  if (SESSION_STORE_RULES[method] !== 'off') return params;
  const base = typeof params === 'object' && params !== null && !Array.isArray(params) ? params : {};
  return { ...base, enableSessionStore: false };
}
