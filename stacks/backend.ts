import { LocalBackend, type TerraformStack } from 'cdktf';

/**
 * cdktf's implicit local backend writes an absolute path of the machine that ran `synth`; an
 * explicit relative path keeps the synthesized JSON identical on every machine.
 */
export function useRelativeLocalBackend(stack: TerraformStack, name: string): LocalBackend {
  return new LocalBackend(stack, { path: `terraform.${name}.tfstate` });
}
