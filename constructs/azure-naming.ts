/**
 * Names of Azure resources for the Azure fleets: deterministic defaults and the naming rules each
 * resource type enforces, checked at synth time so a bad name fails before `terraform apply`.
 *
 * Several Azure names are global (storage accounts, Redis caches) or regional (container group DNS
 * labels). Their defaults are derived from a hash of the construct's address (`node.addr`), never
 * from a random value, so two syntheses give the same JSON and a redeploy keeps its resources.
 * The address is unique within an app, not across the world: two apps with the same construct path
 * would derive the same names, which is why every derived name can be set by a prop.
 */
import { createHash } from 'node:crypto';
import { Token } from 'cdktf';
import type { IConstruct } from 'constructs';
import { describeValue } from '../policy/format.js';

/** The first `length` hex characters of a SHA-256 of the construct's address. */
export function addressHash(scope: IConstruct, length: number): string {
  return createHash('sha256').update(scope.node.addr).digest('hex').slice(0, length);
}

/** `sessionfleet-` and 8 hex characters: short enough for every name derived from it. */
export function defaultFleetName(scope: IConstruct): string {
  return `sessionfleet-${addressHash(scope, 8)}`;
}

/** 24 characters, lowercase letters and digits: the longest storage account name Azure allows. */
export function defaultStorageAccountName(scope: IConstruct): string {
  return `sessionfleet${addressHash(scope, 12)}`;
}

/** Redis cache names are global (`<name>.redis.cache.windows.net`). */
export function defaultRedisCacheName(scope: IConstruct): string {
  return `sessionfleet-${addressHash(scope, 12)}`;
}

/**
 * A name made of lowercase letters, digits and single hyphens, starting with a letter and ending
 * with a letter or digit: what container groups, container apps, environment storages and DNS
 * labels all accept. Returns the problem, or undefined.
 */
export function checkResourceName(prop: string, value: string | undefined, maxLength: number): string | undefined {
  if (value === undefined || Token.isUnresolved(value)) return undefined;
  const ok = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$/.test(value) && value.length >= 2 && value.length <= maxLength;
  return ok
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be 2-${maxLength} lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit`;
}

export function checkStorageAccountName(prop: string, value: string | undefined): string | undefined {
  if (value === undefined || Token.isUnresolved(value)) return undefined;
  return /^[a-z0-9]{3,24}$/.test(value)
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be 3-24 lowercase letters and digits (storage account names are global across Azure)`;
}

export function checkShareName(prop: string, value: string | undefined): string | undefined {
  if (value === undefined || Token.isUnresolved(value)) return undefined;
  const ok = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/.test(value) && value.length >= 3 && value.length <= 63;
  return ok
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit`;
}

export function checkRedisCacheName(prop: string, value: string | undefined): string | undefined {
  if (value === undefined || Token.isUnresolved(value)) return undefined;
  const ok = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*$/.test(value) && value.length <= 63;
  return ok
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be 1-63 letters, digits and single hyphens, starting and ending with a letter or digit (Redis cache names are global across Azure)`;
}
