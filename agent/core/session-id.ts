/**
 * The one rule for a session id a client names, on both fronts (HTTP `Mcp-Session-Id`, header,
 * cookie and query ids; Copilot `params.sessionId`): 1–128 visible ASCII characters — what MCP
 * allows in `Mcp-Session-Id` — that name one directory. The Copilot CLI keeps a session's state in
 * `~/.copilot/session-state/<sessionId>/` and the fleet's cleanup walks such directories, so an id
 * that is not one path segment (`"<id>/"`, `"<id>/../<other>"`, `".."`) would name another
 * session's state, or none: it is refused here, before any lookup, as INVALID_SESSION_ID.
 */

const VISIBLE_ASCII = /^[\x21-\x7e]{1,128}$/;
const PATH_SEPARATOR = /[/\\]/;

/** Why `value` is not a valid session id (a phrase for the error message), or undefined if it is. */
export function sessionIdProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || !VISIBLE_ASCII.test(value)) return 'it is not 1-128 visible ASCII characters';
  if (PATH_SEPARATOR.test(value)) return 'it contains "/" or "\\" (a session id names one directory)';
  if (value === '.' || value === '..') return `${JSON.stringify(value)} names no session directory`;
  return undefined;
}

export function isValidSessionId(value: unknown): value is string {
  return sessionIdProblem(value) === undefined;
}
