/**
 * Who may reach a Kubernetes fleet's client port, and so who may name the principal in the
 * principal header (SPEC.md §7: "a principal header is trusted only from the configured proxy
 * sources"). The NetworkPolicy admits these sources (and the fleet's own pods, which forward
 * requests to each other); the agent additionally refuses the header from any address outside
 * `cidrs` (`--trusted-proxies`).
 *
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource
 */
import type { NetworkPolicyV1SpecIngressFrom } from '@cdktf/provider-kubernetes/lib/network-policy-v1/index.js';

export interface KubernetesTrustedProxiesOptions {
  /**
   * Namespaces whose pods may connect (matched by their `kubernetes.io/metadata.name` label). With
   * `podSelector`, only the selected pods of these namespaces.
   * @default - the fleet's namespace when `podSelector` is given, otherwise none
   */
  readonly namespaces?: readonly string[];
  /**
   * Labels of the proxy's pods, e.g. `{ 'app.kubernetes.io/name': 'oauth2-proxy' }`.
   * @default - every pod of `namespaces`
   */
  readonly podSelector?: Readonly<Record<string, string>>;
  /**
   * Address ranges the proxy connects from (e.g. the ingress controller's or load balancer's
   * subnet). Besides opening the NetworkPolicy to them, these are what the agent checks itself
   * (`--trusted-proxies`): without any, the NetworkPolicy (and a CNI that enforces it) is the only
   * boundary, and the app containers of the fleet's own pods, which the policy admits for
   * agent-to-agent forwarding, could send the header too.
   * @default - none
   */
  readonly cidrs?: readonly string[];
}

export type KubernetesTrustedProxiesKind = 'sources' | 'any-source';

export class KubernetesTrustedProxies {
  /** Only these sources (and the fleet's own pods) may reach the client port. */
  static from(options: KubernetesTrustedProxiesOptions): KubernetesTrustedProxies {
    return new KubernetesTrustedProxies('sources', options);
  }

  /**
   * Every pod and address may reach the client port and name any principal. Only for a cluster in
   * which every client is trusted: this is the explicit choice the construct asks for instead of
   * defaulting to it.
   */
  static anySource(): KubernetesTrustedProxies {
    return new KubernetesTrustedProxies('any-source', {});
  }

  private constructor(
    public readonly kind: KubernetesTrustedProxiesKind,
    public readonly options: KubernetesTrustedProxiesOptions,
  ) {}
}

/** The NetworkPolicy peers of the trusted sources; undefined for `anySource()`. */
export function trustedProxyPeers(
  proxies: KubernetesTrustedProxies,
  fleetNamespace: string,
): NetworkPolicyV1SpecIngressFrom[] | undefined {
  if (proxies.kind === 'any-source') return undefined;
  const { namespaces, podSelector, cidrs } = proxies.options;
  const peers: NetworkPolicyV1SpecIngressFrom[] = [];
  const chosenNamespaces = namespaces ?? (podSelector !== undefined ? [fleetNamespace] : []);
  if (chosenNamespaces.length > 0) {
    peers.push({
      namespaceSelector: {
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [...chosenNamespaces] }],
      },
      ...(podSelector !== undefined ? { podSelector: { matchLabels: { ...podSelector } } } : {}),
    });
  }
  for (const cidr of cidrs ?? []) peers.push({ ipBlock: { cidr } });
  return peers;
}
