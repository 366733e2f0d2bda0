/**
 * Deep freezing for values read by many parts of the agent (its configuration). `Object.freeze`
 * alone is not enough for a URL: its fields are setters over internal state, so a frozen URL can
 * still be rewritten (`url.port = '1'`). A frozen URL's fields are therefore shadowed by accessors
 * whose setters throw, as an assignment to a frozen property does.
 */

const URL_FIELDS = [
  'href',
  'protocol',
  'username',
  'password',
  'host',
  'hostname',
  'port',
  'pathname',
  'search',
  'hash',
] as const;

/** A copy of `url` that cannot change; its `searchParams` is a detached copy. */
export function frozenUrl(url: URL): URL {
  const copy = new URL(url.href);
  for (const field of URL_FIELDS) {
    const read = Object.getOwnPropertyDescriptor(URL.prototype, field)?.get;
    Object.defineProperty(copy, field, {
      get: () => read?.call(copy),
      set: () => {
        throw new TypeError(`Cannot assign to read only property '${field}' of a frozen URL`);
      },
    });
  }
  Object.defineProperty(copy, 'searchParams', { get: () => new URLSearchParams(copy.search) });
  return Object.freeze(copy);
}

/** A copy of `value` frozen all the way down; URLs become `frozenUrl`s. */
export function deepFrozen<T>(value: T): T {
  if (value instanceof URL) return (Object.isFrozen(value) ? value : frozenUrl(value)) as T;
  if (Array.isArray(value)) return Object.freeze(value.map((item) => deepFrozen(item))) as T;
  if (value !== null && typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    // Anything else (a Map, a class instance) would lose its behaviour in a plain copy.
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError(`cannot deep-freeze a ${proto.constructor?.name ?? 'value'}`);
    const copy: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) copy[key] = deepFrozen(field);
    return Object.freeze(copy) as T;
  }
  return value;
}
