/**
 * The zod building blocks every policy module shares, so each check carries only its rule text
 * ("must be between 1 and 200") and `validate.ts` prefixes the field path and the value.
 */
import { z } from 'zod';

export function typeRule(expected: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${expected}`);
}

/** A whole number between `min` and `max`, with the range in every message. */
export function wholeNumber(min: number, max: number) {
  const range = `must be between ${min} and ${max}`;
  return z
    .number({ error: typeRule('a number') })
    .int({ error: 'must be a whole number' })
    .min(min, { error: range })
    .max(max, { error: range });
}
