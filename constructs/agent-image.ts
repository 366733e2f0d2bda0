/**
 * Whether the default agent image can be pulled, and the synth-time warning when it cannot.
 * Kept apart from agent-container.ts, which describes the agent without cdktf.
 */
import { Annotations, TerraformStack } from 'cdktf';
import type { IConstruct } from 'constructs';
import { DEFAULT_AGENT_IMAGE } from './agent-container.js';

/**
 * Whether `DEFAULT_AGENT_IMAGE` has been pushed to its registry. No release has published it yet:
 * until one does, a fleet on the default image ends in ImagePullBackOff (Kubernetes) or a failed
 * container group (Azure), so synth warns. Flip it in the release that pushes the image.
 */
export const DEFAULT_AGENT_IMAGE_PUBLISHED: boolean = false;

/** The warning for a fleet's agent image, or undefined when the image is one you chose. */
export function agentImageWarning(image: string): string | undefined {
  if (image !== DEFAULT_AGENT_IMAGE || DEFAULT_AGENT_IMAGE_PUBLISHED) return undefined;
  return (
    `the agent image ${DEFAULT_AGENT_IMAGE} (the default) is not published yet, so pods/containers would fail to pull it: ` +
    'build it with scripts/build-image.sh (or `docker build -f agent/Dockerfile .` in the package), push it to your ' +
    'registry and pass it as the agent image (docs/image.md)'
  );
}

/**
 * Adds the unpublished-default-image warning, which `cdktf synth` prints, to the fleet's stack: the
 * fleet's own warnings stay those of its policy.
 */
export function warnAboutAgentImage(fleet: IConstruct, image: string): void {
  const warning = agentImageWarning(image);
  if (warning !== undefined) Annotations.of(TerraformStack.of(fleet)).addWarning(`${fleet.node.path}: ${warning}`);
}
