/**
 * Checks over converted manifests, written from the Kubernetes documentation rather than from the
 * constructs: the OpenAPI schema (through `kubernetes-models`, generated from the Kubernetes
 * OpenAPI document), the Pod Security Standards "restricted" profile, and issue 16's rules.
 */
import {
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { ConvertedManifest, Json } from './manifests.js';
import { leftoverKeys } from './manifests.js';

interface ModelClass {
  new (data: Json): { validate(): void };
}

/** The kubernetes-models class of each apiVersion/kind the provider resources and manifests make. */
const MODELS: Readonly<Record<string, ModelClass>> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
};

function modelOf(apiVersion: string, kind: string): ModelClass {
  const model = MODELS[`${apiVersion}/${kind}`];
  if (!model) throw new Error(`no schema model for ${apiVersion}/${kind}: add it to MODELS`);
  return model;
}

function valueAt(root: Json, path: string): Json {
  return path
    .split('/')
    .filter((p) => p !== '' && p !== 'data')
    .reduce((v, p) => (v === undefined || v === null ? undefined : v[p]), root);
}

/** Schema problems of one manifest; a value that is still a Terraform expression is only known at apply. */
export async function schemaProblems({ address, manifest }: ConvertedManifest): Promise<string[]> {
  const problems = leftoverKeys(manifest).map((p) => `${address}: ${p} is not a field of the API (conversion gap)`);
  const Model = modelOf(manifest.apiVersion, manifest.kind);
  try {
    new Model(manifest).validate();
  } catch (error) {
    const lines = String((error as Error).message).split(/\n|, (?=data\/)/);
    for (const line of lines) {
      const path = line.split(' ')[0] ?? '';
      const value = valueAt(manifest, path);
      if (typeof value === 'string' && value.includes('${')) continue;
      problems.push(`${address}: ${line}`);
    }
  }
  return problems;
}

const PSS_VOLUMES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
];

/** The pod template of a workload manifest, if it is one. */
export function podTemplateOf(manifest: Json): Json | undefined {
  if (manifest.kind === 'Deployment' || manifest.kind === 'StatefulSet') return manifest.spec?.template;
  return undefined;
}

/**
 * Pod Security Standards, "restricted" (which includes "baseline"), as documented at
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/
 */
export function restrictedProblems({ address, manifest }: ConvertedManifest): string[] {
  const template = podTemplateOf(manifest);
  if (!template) return [];
  const spec = template.spec ?? {};
  const pod = spec.securityContext ?? {};
  const problems: string[] = [];
  const say = (what: string) => problems.push(`${address}: ${what}`);
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) say('uses a host namespace');
  for (const volume of spec.volumes ?? []) {
    const type = Object.keys(volume).find((k) => k !== 'name');
    if (!type || !PSS_VOLUMES.includes(type)) say(`volume ${volume.name} of type ${type} is not allowed`);
  }
  if (pod.seccompProfile?.type === 'Unconfined') say('pod seccomp profile Unconfined');
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const sc = c.securityContext ?? {};
    const name = `container ${c.name}`;
    if (sc.privileged) say(`${name} is privileged`);
    if ((c.ports ?? []).some((p: Json) => p.hostPort)) say(`${name} uses a host port`);
    if (sc.allowPrivilegeEscalation !== false) say(`${name} must set allowPrivilegeEscalation false`);
    const nonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    if (nonRoot !== true) say(`${name} must run as non-root (runAsNonRoot true)`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) say(`${name} runs as uid 0`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
      say(`${name} needs seccomp RuntimeDefault or Localhost`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) say(`${name} must drop ALL capabilities`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') say(`${name} adds capability ${cap}`);
  }
  return problems;
}

function flagOf(args: readonly string[] | undefined, flag: string): string | undefined {
  const i = (args ?? []).indexOf(flag);
  return i === -1 ? undefined : args?.[i + 1];
}

function selects(selector: Json, labels: Json): boolean {
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
}

/**
 * Issue 16's rules over one stack's manifests (and the raw Terraform JSON, for references):
 * fleet names, principal-header boundary, truthful probes, state cleanup, references, recycler scope.
 */
export function ruleProblems(manifests: readonly ConvertedManifest[], stack: Json): string[] {
  const problems: string[] = [];
  const all = manifests.map((m) => m.manifest);
  const fleets = new Map<string, string>();
  for (const { address, manifest } of manifests) {
    const template = podTemplateOf(manifest);
    const agent = template?.spec?.containers?.find((c: Json) => c.name === 'agent');
    const app = template?.spec?.containers?.find((c: Json) => c.name === 'app');
    if (!agent || !app) continue;
    const say = (what: string) => problems.push(`${address}: ${what}`);
    const args: string[] = agent.args ?? [];
    const env = Object.fromEntries(
      (agent.env ?? []).map((e: Json) => [e.name, e.value ?? JSON.stringify(e.valueFrom)]),
    );
    // Item 3: agents that share a Redis must not share a fleet name.
    const redis = env.SESSIONFLEET_REDIS;
    if (redis !== undefined) {
      const fleet = flagOf(args, '--fleet');
      if (!fleet) say('uses Redis but passes no --fleet');
      else {
        const key = `${redis}\u0000${fleet}`;
        const other = fleets.get(key);
        if (other && other !== manifest.metadata.name) say(`shares Redis and fleet name ${fleet} with ${other}`);
        fleets.set(key, manifest.metadata.name);
      }
    }
    // Item 2: a principal header is trusted only from restricted sources.
    if (flagOf(args, '--principal-header') !== undefined) {
      const labels = template.metadata?.labels;
      const policies = all.filter((m) => m.kind === 'NetworkPolicy' && selects(m.spec?.podSelector, labels));
      const clientRules = policies.flatMap((p) =>
        (p.spec.ingress ?? []).filter((r: Json) => (r.ports ?? []).some((port: Json) => port.port === 8080)),
      );
      if (clientRules.length === 0 || clientRules.some((r: Json) => !r.from || r.from.length === 0)) {
        const anyone = flagOf(args, '--trusted-proxies') === undefined;
        if (anyone)
          say('takes --principal-header from any pod: the client port is open and no --trusted-proxies is set');
      }
    }
    // Item 6: the app's start-up and the agent's liveness are separate endpoints.
    if (app.startupProbe?.httpGet?.path !== '/startupz') say('app startup probe must ask /startupz');
    if (agent.livenessProbe?.httpGet?.path !== '/livez') say('agent liveness probe must ask /livez');
    // Item 7: shared state is cleaned up by the agent.
    const claimVolumes = (template.spec.volumes ?? []).filter((v: Json) => v.persistentVolumeClaim);
    for (const volume of claimVolumes) {
      const mount = (agent.volumeMounts ?? []).find((m: Json) => m.name === volume.name);
      if (!mount) say(`agent does not mount the shared state volume ${volume.name}`);
      else if (flagOf(args, '--session-state-dir') !== mount.mountPath)
        say('agent has no --session-state-dir for its mount');
    }
    // Issue 14 §1: in front of the Copilot CLI no app container mounts the shared state; the agent
    // stages each session into a volume it shares with the app alone (--app-state-dir).
    if (claimVolumes.length > 0 && String(flagOf(args, '--upstream')).startsWith('tcp://')) {
      for (const volume of claimVolumes) {
        if ((app.volumeMounts ?? []).some((m: Json) => m.name === volume.name))
          say(`app mounts the shared state volume ${volume.name}: every user's sessions are readable from the app`);
      }
      const appDir = flagOf(args, '--app-state-dir');
      const staged = (agent.volumeMounts ?? []).find((m: Json) => m.mountPath === appDir);
      const privateVolume = (template.spec.volumes ?? []).find((v: Json) => v.name === staged?.name);
      if (!staged || !privateVolume || privateVolume.persistentVolumeClaim)
        say('agent stages no session state: no --app-state-dir on a private volume of the pod');
      else if (!(app.volumeMounts ?? []).some((m: Json) => m.name === staged.name))
        say(`app does not mount the volume ${staged.name} the agent stages session state into`);
    }
    // Item 19: a recycler may delete only the fleet's pods.
    const account = template.spec.serviceAccountName;
    if (account) {
      const namespace = manifest.metadata.namespace;
      const guarded = all.some(
        (m) =>
          m.kind === 'ValidatingAdmissionPolicy' &&
          (m.spec?.matchConditions ?? []).some((c: Json) =>
            String(c.expression).includes(`system:serviceaccount:${namespace}:${account}`),
          ),
      );
      if (!guarded)
        say(`service account ${account} can delete any pod of ${namespace}: no admission policy narrows it`);
    }
  }
  // Item 14: the pods name their claims and Secrets the construct made by reference.
  for (const [id, raw] of Object.entries(stack.resource?.kubernetes_deployment_v1 ?? {}) as [string, Json][]) {
    for (const volume of raw.spec?.template?.spec?.volume ?? []) {
      const claim = volume.persistent_volume_claim?.claim_name;
      const made = Object.values(stack.resource?.kubernetes_persistent_volume_claim_v1 ?? {}).some(
        (c: Json) => c.metadata?.name === claim,
      );
      if (made) problems.push(`kubernetes_deployment_v1.${id}: claim ${claim} is named literally, not by reference`);
    }
  }
  return problems;
}
