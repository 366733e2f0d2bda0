/**
 * Session isolation with recycling (`recycleAfterSession`): once the instance's one session has
 * ended, the instance must not serve another, so the next session starts on a fresh instance with
 * nothing of the last one left behind. In Kubernetes the agent deletes its own pod (a restarted
 * container would keep the pod's volumes and the app's files); elsewhere it simply exits and the
 * platform starts a new instance.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';

/** Where Kubernetes projects the service-account credentials (the construct mounts them into the agent only). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PodIdentity {
  /** The API server, e.g. `https://10.96.0.1:443`. */
  apiUrl: string;
  token: string;
  namespace: string;
  podName: string;
  /** PEM of the cluster CA; undefined only for a plain-HTTP API (tests, proxies). */
  ca?: string;
}

/**
 * The pod's identity from the in-cluster environment, or undefined when the agent does not run in
 * a pod with API credentials (then recycling is an exit).
 */
export async function inClusterPod(
  env: NodeJS.ProcessEnv = process.env,
  dir = SERVICE_ACCOUNT_DIR,
): Promise<PodIdentity | undefined> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const podName = env.SESSIONFLEET_INSTANCE_ID ?? env.HOSTNAME;
  if (!host || !podName) return undefined;
  try {
    const [token, namespace, ca] = await Promise.all([
      readFile(`${dir}/token`, 'utf8'),
      readFile(`${dir}/namespace`, 'utf8'),
      readFile(`${dir}/ca.crt`, 'utf8'),
    ]);
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return { apiUrl: `https://${hostPart}:${port}`, token: token.trim(), namespace: namespace.trim(), podName, ca };
  } catch {
    return undefined;
  }
}

/** Deletes the pod through the API server. Resolves true when the API accepted (or the pod is already gone). */
export async function deleteOwnPod(pod: PodIdentity, signal?: AbortSignal): Promise<boolean> {
  const url = `${pod.apiUrl}/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.podName)}`;
  const dispatcher = pod.ca ? new Agent({ connect: { ca: pod.ca } }) : undefined;
  try {
    const response = await request(url, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${pod.token}`, accept: 'application/json', 'content-type': 'application/json' },
      // The pod's own grace period applies: the agent has drained already, the app gets its preStop.
      body: JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' }),
      ...(dispatcher ? { dispatcher } : {}),
      ...(signal ? { signal } : {}),
    });
    await response.body.dump();
    return response.statusCode === 200 || response.statusCode === 202 || response.statusCode === 404;
  } finally {
    await dispatcher?.close();
  }
}
