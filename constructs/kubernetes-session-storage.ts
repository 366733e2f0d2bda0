/**
 * Where a Kubernetes fleet keeps session state (SPEC.md §5: the Copilot CLI writes it under
 * `~/.copilot/session-state/`). Built with the factory functions of `KubernetesSessionStorage`:
 *
 * - `sharedVolume()`: one PersistentVolumeClaim every instance mounts. With `ReadWriteMany` any
 *   instance can resume any session, so a session survives the instance that held it.
 * - `perInstanceVolume()`: a volume per instance through a StatefulSet; sessions are sticky-only
 *   and keep their state across restarts of their own instance.
 * - `existingClaim()`: a PersistentVolumeClaim you manage yourself.
 * - `ephemeral()`: an emptyDir that dies with the pod: nothing is left behind (session recycling).
 */
import { DEFAULT_SESSION_STATE_PATH } from '../policy/agent-interface.js';

/** PersistentVolume access modes a writable session-state volume can use. */
export const KUBERNETES_ACCESS_MODES = ['ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod'] as const;
export type KubernetesAccessMode = (typeof KUBERNETES_ACCESS_MODES)[number];

export interface KubernetesVolumeOptions {
  /**
   * Size of the volume, in GiB.
   * @default 10
   */
  readonly sizeGiB?: number;
  /**
   * StorageClass of the claim. For `ReadWriteMany` pick a class that offers it (Azure Files,
   * NFS, CephFS, EFS); most default classes are `ReadWriteOnce` only.
   * @see https://kubernetes.io/docs/concepts/storage/persistent-volumes/#access-modes
   * @default - the cluster's default StorageClass
   */
  readonly storageClassName?: string;
  /**
   * Where the app container mounts the volume.
   * @default '/root/.copilot/session-state' (the Copilot CLI's session state)
   */
  readonly mountPath?: string;
}

export interface KubernetesSharedVolumeOptions extends KubernetesVolumeOptions {
  /**
   * Access mode of the claim. `ReadWriteMany` lets every instance mount it, so sessions are
   * resumable on any instance (the policy's `sharedSessionState`); `ReadWriteOnce` and
   * `ReadWriteOncePod` need a fleet of one instance (`maxInstances: 1`).
   * @default 'ReadWriteMany'
   */
  readonly accessMode?: KubernetesAccessMode;
}

export interface KubernetesPerInstanceVolumeOptions extends KubernetesVolumeOptions {
  /**
   * Access mode of each instance's claim.
   * @default 'ReadWriteOnce'
   */
  readonly accessMode?: 'ReadWriteOnce' | 'ReadWriteOncePod';
}

export interface KubernetesExistingClaimOptions {
  /** Name of the PersistentVolumeClaim, in the fleet's namespace. */
  readonly claimName: string;
  /**
   * The claim's access mode, which decides whether sessions are resumable on any instance.
   * @default 'ReadWriteMany'
   */
  readonly accessMode?: KubernetesAccessMode;
  /**
   * Where the app container mounts the volume.
   * @default '/root/.copilot/session-state'
   */
  readonly mountPath?: string;
}

export interface KubernetesEphemeralOptions {
  /**
   * Where the app container mounts the emptyDir.
   * @default '/root/.copilot/session-state'
   */
  readonly mountPath?: string;
  /**
   * Most the emptyDir may hold, in MiB.
   * @default - no limit beyond the node's ephemeral storage
   */
  readonly sizeLimitMiB?: number;
}

/** Session-state storage of a Kubernetes fleet; create one with the `KubernetesSessionStorage` functions. */
export type KubernetesSessionStorage =
  | {
      readonly kind: 'shared-volume';
      readonly sizeGiB: number;
      readonly storageClassName?: string;
      readonly accessMode: KubernetesAccessMode;
      readonly mountPath: string;
    }
  | {
      readonly kind: 'per-instance-volume';
      readonly sizeGiB: number;
      readonly storageClassName?: string;
      readonly accessMode: 'ReadWriteOnce' | 'ReadWriteOncePod';
      readonly mountPath: string;
    }
  | {
      readonly kind: 'existing-claim';
      readonly claimName: string;
      readonly accessMode: KubernetesAccessMode;
      readonly mountPath: string;
    }
  | { readonly kind: 'ephemeral'; readonly mountPath: string; readonly sizeLimitMiB?: number };

export const KubernetesSessionStorage = {
  /** One PersistentVolumeClaim, created by the construct, that every instance mounts. */
  sharedVolume(options: KubernetesSharedVolumeOptions = {}): KubernetesSessionStorage {
    return {
      kind: 'shared-volume',
      sizeGiB: options.sizeGiB ?? 10,
      ...(options.storageClassName !== undefined ? { storageClassName: options.storageClassName } : {}),
      accessMode: options.accessMode ?? 'ReadWriteMany',
      mountPath: options.mountPath ?? DEFAULT_SESSION_STATE_PATH,
    };
  },
  /** A volume per instance (a StatefulSet's volumeClaimTemplate): sticky-only sessions. */
  perInstanceVolume(options: KubernetesPerInstanceVolumeOptions = {}): KubernetesSessionStorage {
    return {
      kind: 'per-instance-volume',
      sizeGiB: options.sizeGiB ?? 10,
      ...(options.storageClassName !== undefined ? { storageClassName: options.storageClassName } : {}),
      accessMode: options.accessMode ?? 'ReadWriteOnce',
      mountPath: options.mountPath ?? DEFAULT_SESSION_STATE_PATH,
    };
  },
  /** A PersistentVolumeClaim managed outside the construct. */
  existingClaim(options: KubernetesExistingClaimOptions): KubernetesSessionStorage {
    return {
      kind: 'existing-claim',
      claimName: options.claimName,
      accessMode: options.accessMode ?? 'ReadWriteMany',
      mountPath: options.mountPath ?? DEFAULT_SESSION_STATE_PATH,
    };
  },
  /** An emptyDir: session state dies with the pod. */
  ephemeral(options: KubernetesEphemeralOptions = {}): KubernetesSessionStorage {
    return {
      kind: 'ephemeral',
      mountPath: options.mountPath ?? DEFAULT_SESSION_STATE_PATH,
      ...(options.sizeLimitMiB !== undefined ? { sizeLimitMiB: options.sizeLimitMiB } : {}),
    };
  },
} as const;

/** Whether every instance mounts the same state, so any instance can resume any session. */
export function isSharedStorage(storage: KubernetesSessionStorage): boolean {
  return (
    (storage.kind === 'shared-volume' || storage.kind === 'existing-claim') && storage.accessMode === 'ReadWriteMany'
  );
}

/** A short description of a storage choice for error messages. */
export function describeStorage(storage: KubernetesSessionStorage): string {
  switch (storage.kind) {
    case 'shared-volume':
      return `sharedVolume, ${storage.accessMode}`;
    case 'per-instance-volume':
      return 'perInstanceVolume';
    case 'existing-claim':
      return `existingClaim "${storage.claimName}", ${storage.accessMode}`;
    case 'ephemeral':
      return 'ephemeral';
  }
}
