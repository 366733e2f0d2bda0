/**
 * Helpers of the Kubernetes construct tests: synthesize a scope with cdktf's `Testing`, find
 * resources in the JSON, and a `toHaveResourceWithProperties` matcher over cdktf's own.
 */

import { TerraformStack, Testing } from 'cdktf';
import { getToHaveResourceWithProperties, returnMatcherToJest } from 'cdktf/lib/testing/matchers.js';
import type { Construct } from 'constructs';
import { expect } from 'vitest';
import { SessionFleetValidationError } from '../../constructs/index.js';

// biome-ignore lint/suspicious/noExplicitAny: synthesized Terraform JSON is untyped by nature
export type Json = any;

export interface Synthesized {
  /** The JSON text as cdktf writes it (keys sorted, metadata removed). */
  readonly text: string;
  readonly json: Json;
}

export function synth(build: (scope: Construct) => void): Synthesized {
  const text = Testing.synthScope(build);
  return { text, json: JSON.parse(text) };
}

/** Every resource of a Terraform type, by logical id. */
export function resourcesOf(s: Synthesized, type: string): Record<string, Json> {
  return s.json.resource?.[type] ?? {};
}

/** The resource of a type whose Kubernetes `metadata.name` is `name`; fails when there is not exactly one. */
export function named(s: Synthesized, type: string, name: string): Json {
  const found = Object.values(resourcesOf(s, type)).filter((r: Json) => r.metadata?.name === name);
  expect(found, `${type} named ${name}`).toHaveLength(1);
  return found[0];
}

/** How many resources of each type, e.g. `{ kubernetes_service_v1: 2 }`. */
export function resourceCounts(s: Synthesized): Record<string, number> {
  return Object.fromEntries(
    Object.entries(s.json.resource ?? {}).map(([type, items]) => [type, Object.keys(items as object).length]),
  );
}

/** A Terraform expression as it appears in the synthesized JSON: `tf('var.cpu')` is "${var.cpu}". */
export function tf(expression: string): string {
  return `\${${expression}}`;
}

/** The pod template spec of a Deployment or StatefulSet. */
export function podSpec(workload: Json): Json {
  return workload.spec.template.spec;
}

export function container(workload: Json, name: string): Json {
  const found = podSpec(workload).container.find((c: Json) => c.name === name);
  expect(found, `container ${name}`).toBeDefined();
  return found;
}

export function envOf(c: Json): Record<string, Json> {
  return Object.fromEntries((c.env ?? []).map((e: Json) => [e.name, e.value ?? e.value_from]));
}

/** The message a construction throws, and that it is a SessionFleetValidationError. */
export function constructionError(build: (stack: TerraformStack) => void): string {
  const stack = new TerraformStack(Testing.app(), 'stack');
  try {
    build(stack);
  } catch (error) {
    expect(error).toBeInstanceOf(SessionFleetValidationError);
    return (error as Error).message;
  }
  throw new Error('expected the construction to throw');
}

const toHaveResourceWithProperties = getToHaveResourceWithProperties();

expect.extend({
  toHaveResourceWithProperties(received: string, resourceType: { tfResourceType: string }, properties: object) {
    return returnMatcherToJest(toHaveResourceWithProperties(received, resourceType, properties));
  },
});

declare module 'vitest' {
  interface Matchers<T> {
    /** cdktf's matcher: some resource of the type has (at least) these properties, in Terraform's snake case or not. */
    toHaveResourceWithProperties(resourceType: { tfResourceType: string }, properties: object): T;
  }
}

/** The Terraform reference to the `metadata.name` of the resource of `type` named `name` (issue 16, item 14). */
export function nameRef(s: Synthesized, type: string, name: string): string {
  const found = Object.entries(resourcesOf(s, type)).filter(([, r]: [string, Json]) => r.metadata?.name === name);
  expect(found, `${type} named ${name}`).toHaveLength(1);
  return `\${${type}.${found[0]![0]}.metadata[0].name}`;
}
