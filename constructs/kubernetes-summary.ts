// How `printFleetSummary` describes a KubernetesSessionFleet: the defaults that need something in
// the cluster beyond what the fleet creates.
import type { IConstruct } from 'constructs';
import { agentImageWarning } from './agent-image.js';
import { registerFleetDescriber } from './fleet-summary.js';
import { SESSION_UTILIZATION_METRIC } from './kubernetes-fleet-instances.js';
import { KubernetesSessionFleet } from './kubernetes-session-fleet.js';

function kubernetesFleetWarnings(fleet: KubernetesSessionFleet, types: ReadonlyMap<string, number>): string[] {
  const warnings: string[] = [];
  const autoscalers = types.get('kubernetes_horizontal_pod_autoscaler_v2') ?? 0;
  if (autoscalers > 0 && fleet.scaleOn === 'sessions') {
    warnings.push(
      `the HorizontalPodAutoscaler scales on the pods metric ${SESSION_UTILIZATION_METRIC}: install a custom-metrics ` +
        "adapter (e.g. prometheus-adapter) that serves it, or the fleet never scales; or set scaleOn: 'cpu'",
    );
  }
  const storage = fleet.storage;
  if (storage.kind === 'shared-volume' && storage.accessMode === 'ReadWriteMany') {
    const storageClass = storage.storageClassName ?? "the cluster's default StorageClass";
    warnings.push(
      `a ${storage.sizeGiB} GiB ReadWriteMany claim: ${storageClass} must offer ReadWriteMany ` +
        '(azurefile-csi on AKS, efs-sc on EKS, NFS), or the claim stays Pending',
    );
  }
  if (fleet.redis.kind === 'in-cluster') {
    warnings.push(
      'an in-cluster Redis of its own (one replica, no persistence): for availability point it at a Redis with ' +
        'replicas, KubernetesFleetRedis.sentinel(...), .cluster(...) or .external(...)',
    );
  }
  const image = agentImageWarning(fleet.agent.image);
  if (image !== undefined) warnings.push(image);
  return warnings;
}

registerFleetDescriber({
  identify: (node: IConstruct) =>
    node instanceof KubernetesSessionFleet ? { kind: 'KubernetesSessionFleet', name: node.name } : undefined,
  warnings: (node, types) => kubernetesFleetWarnings(node as KubernetesSessionFleet, types),
});
