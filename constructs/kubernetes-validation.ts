/**
 * What the Kubernetes constructs check before they synthesize anything: Kubernetes names, label
 * syntax, quantities and Secret references. Every check appends one sentence to a `Problems` list
 * that quotes the prop, shows the value and states the rule; the construct throws them all at once
 * (`SessionFleetValidationError`). A value that is an unresolved token is never checked: it is only
 * known at apply time.
 */
import { Token } from 'cdktf';
import { describeValue } from '../policy/format.js';

/** A key of a Kubernetes Secret: how every secret reaches a container (never as a plain value). */
export interface KubernetesSecretKey {
  /** Name of a Secret in the fleet's namespace. */
  readonly secretName: string;
  /** Key inside that Secret. */
  readonly key: string;
}

/** Collects the problems of one construct's props. */
export class Problems {
  readonly list: string[] = [];

  /** `'prop' (value) rule` */
  add(prop: string, value: unknown, rule: string): void {
    this.list.push(`'${prop}' (${describeValue(value)}) ${rule}`);
  }

  /** `'prop' (shown) rule`, for a value already put in words (e.g. a storage choice). */
  addShown(prop: string, shown: string, rule: string): void {
    this.list.push(`'${prop}' (${shown}) ${rule}`);
  }

  /** A sentence that is not about one value. */
  addSentence(sentence: string): void {
    this.list.push(sentence);
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}

export function isToken(value: unknown): boolean {
  return Token.isUnresolved(value);
}

// RFC 1123 label (most names) and RFC 1035 label (Service names must start with a letter).
const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Label values and the name part of label keys: alphanumerics, '-', '_', '.', alphanumeric at both ends.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
// Environment variable names as Kubernetes validates them for containers (C identifiers plus '-' and '.').
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
// Keys of Secrets and ConfigMaps.
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

export const RULES = {
  dns1123Label: (max: number) =>
    `must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters`,
  dns1035Label: (max: number) =>
    `must be a DNS label that starts with a letter: lowercase letters, digits and '-', ending with a letter or digit, at most ${max} characters`,
  dns1123Subdomain:
    "must be a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters",
  envName: "must be an environment variable name: letters, digits, '_', '-' and '.', not starting with a digit",
  secretKey: "must be a Secret key: letters, digits, '-', '_' and '.', at most 253 characters",
} as const;

export function isDns1123Label(value: string, max = 63): boolean {
  return value.length <= max && DNS_1123_LABEL.test(value);
}

export function isDns1035Label(value: string, max = 63): boolean {
  return value.length <= max && DNS_1035_LABEL.test(value);
}

export function isDns1123Subdomain(value: string): boolean {
  return value.length <= 253 && DNS_1123_SUBDOMAIN.test(value);
}

/** `prefix/name` or `name`, where the prefix is a DNS subdomain and the name at most 63 characters. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

export function isEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

/** Checks a Secret reference; `prop` is how the user wrote it, e.g. `app.secretEnv.GITHUB_TOKEN`. */
export function checkSecretKey(problems: Problems, prop: string, ref: KubernetesSecretKey): void {
  if (!isToken(ref.secretName) && !isDns1123Subdomain(ref.secretName)) {
    problems.add(`${prop}.secretName`, ref.secretName, RULES.dns1123Subdomain);
  }
  if (!isToken(ref.key) && !(ref.key.length <= 253 && SECRET_KEY.test(ref.key))) {
    problems.add(`${prop}.key`, ref.key, RULES.secretKey);
  }
}

/** A whole number in [min, max]; tokens pass. */
export function checkWholeNumber(problems: Problems, prop: string, value: number, min: number, max: number): void {
  if (isToken(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(prop, value, `must be a whole number between ${min} and ${max}`);
  }
}

/** MiB as a Kubernetes quantity. */
export function mebibytes(value: number): string {
  return isToken(value) ? `${Token.asString(value)}Mi` : `${value}Mi`;
}

/** A fraction as a Kubernetes quantity without floating-point noise: 0.8 → "800m", 1 → "1". */
export function fractionQuantity(value: number): string {
  // Kubernetes also reads decimal quantities ("0.8"): the form a value known at apply time takes.
  if (isToken(value)) return Token.asString(value);
  const millis = Math.round(value * 1000);
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

/**
 * A construct id in kebab case, as the default Kubernetes name: "CopilotCli" → "copilot-cli",
 * "MCPServers" → "mcp-servers".
 */
export function kebabCase(id: string): string {
  return id
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
}
