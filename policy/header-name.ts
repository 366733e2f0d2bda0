/**
 * What an HTTP header name is, for every place that takes one: the policy's `affinity.headerName`,
 * the agent's `--principal-header` and `--tenant-header`, and the construct props that become those
 * flags. One rule, so a name the constructs accept is a name the agent accepts.
 */

/** RFC 9110 §5.6.2 token: the characters a header field name may use (also the JSON Schema's pattern). */
export const HEADER_NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The rule, worded to follow "must be" in an error message. */
export const HEADER_NAME_RULE = "a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)";

export function isHeaderName(value: unknown): value is string {
  return typeof value === 'string' && HEADER_NAME_PATTERN.test(value);
}

/** Whether two header names are the same header (names are case-insensitive). */
export function sameHeaderName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
