/**
 * V8 settings the agent applies to itself at start-up, before it serves anything.
 *
 * Allocation-site pretenuring: when most objects from one allocation site survive a young-generation
 * collection (at start-up, or in a burst with many requests in flight), V8 starts allocating that
 * site's objects straight into the old generation and seldom goes back. For a proxy that is the
 * wrong bet: every request's objects (parsed headers, the upstream request, the response) then
 * live in the old generation, which only full collections reclaim, and point into the young one,
 * which makes each young collection slow. Measured with `bench/http-proxy.ts`: at 2,000 req/s,
 * young collections took ~7 ms instead of ~1 ms and the old generation filled every 2–3 s.
 * Switching it off costs nothing a proxy needs. Naming `--allocation-site-pretenuring` (or its
 * `--no-` form) on node's command line leaves the choice to the operator.
 */
import { setFlagsFromString } from 'node:v8';

const PRETENURING = /^--(?:no-)?allocation[-_]site[-_]pretenuring$/;

/** Applies the agent's V8 settings unless the operator chose them; returns the flags applied. */
export function tuneV8(
  execArgv: readonly string[] = process.execArgv,
  apply: (flag: string) => void = setFlagsFromString,
): string[] {
  if (execArgv.some((arg) => PRETENURING.test(arg))) return [];
  const flag = '--no-allocation-site-pretenuring';
  apply(flag);
  return [flag];
}
