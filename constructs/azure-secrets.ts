/**
 * Secrets for the Azure fleets are accepted only as references, so the synthesized JSON never holds
 * a secret value: Terraform resolves the reference at apply time and hands the value to Azure as a
 * secure environment variable (Container Instances) or a container app secret.
 */
import type { DataAzurermKeyVaultSecret } from '@cdktf/provider-azurerm/lib/data-azurerm-key-vault-secret/index.js';
import { TerraformDataSource, TerraformVariable, Token } from 'cdktf';
import { AGENT_ENV } from '../policy/agent-interface.js';

/**
 * Where a secret comes from:
 * - a Key Vault secret read with a data source (`new DataAzurermKeyVaultSecret(...)`);
 * - a `TerraformVariable` declared `sensitive: true` and without a default (the value is given at
 *   apply time, e.g. `TF_VAR_<name>`);
 * - any other reference (an unresolved token), e.g. an attribute of a resource of your stack.
 *
 * A plain string is refused: it would be written into the synthesized JSON.
 */
export type AzureSecretSource = TerraformDataSource | TerraformVariable | string;

/** The props of a fleet that carry secrets (a part of `AzureSessionFleetBaseProps`, named here so this file needs nothing from the fleet). */
export interface AzureSecretProps {
  readonly app?: { readonly secretEnv?: Readonly<Record<string, AzureSecretSource>> };
  readonly upstreamToken?: AzureSecretSource;
  readonly adminToken?: AzureSecretSource;
  readonly redisUrl?: AzureSecretSource;
}

const KEY_VAULT_SECRET = 'azurerm_key_vault_secret';

/**
 * The problem with `source` as the value of prop `prop`, or undefined. Messages never quote the
 * value of a secret.
 */
export function checkSecretSource(prop: string, source: AzureSecretSource | undefined): string | undefined {
  if (source === undefined) return undefined;
  if (typeof source === 'string') {
    return Token.isUnresolved(source)
      ? undefined
      : `'${prop}' is a plain string: pass a reference (a Key Vault secret data source, a sensitive TerraformVariable or a resource attribute) so the secret is not written into the synthesized JSON`;
  }
  if (source instanceof TerraformVariable) {
    const name = source.friendlyUniqueId;
    if (source.sensitive !== true)
      return `'${prop}' (variable "${name}") must be declared with sensitive: true, so Terraform keeps its value out of plans and logs`;
    if (source.default !== undefined)
      return `'${prop}' (variable "${name}") must not have a default: the default would be written into the synthesized JSON; give the value at apply time (TF_VAR_${name})`;
    return undefined;
  }
  if (TerraformDataSource.isTerraformDataSource(source) && source.terraformResourceType !== KEY_VAULT_SECRET) {
    return `'${prop}' is a data source of type "${source.terraformResourceType}": only "${KEY_VAULT_SECRET}" data sources hold a secret value`;
  }
  return undefined;
}

/** The Terraform reference to the secret's value, e.g. `${data.azurerm_key_vault_secret.x.value}`. */
export function secretValue(source: AzureSecretSource): string {
  if (typeof source === 'string') return source;
  if (source instanceof TerraformVariable) return source.stringValue;
  return source.getStringAttribute('value');
}

/** The Key Vault secret data source behind `source`, if that is what it is. */
export function keyVaultSecretOf(source: AzureSecretSource | undefined): DataAzurermKeyVaultSecret | undefined {
  return source !== undefined &&
    typeof source !== 'string' &&
    TerraformDataSource.isTerraformDataSource(source) &&
    source.terraformResourceType === KEY_VAULT_SECRET
    ? (source as DataAzurermKeyVaultSecret)
    : undefined;
}

/** A secret handed to a container as an environment variable. */
export interface SecretEnv {
  readonly env: string;
  /** Name for platforms that keep secrets by name (Container Apps): lowercase letters, digits, hyphens. */
  readonly secretName: string;
  /** Reference to the value. */
  readonly value: string;
  /** Where it comes from, when a prop gave it (not for a Redis the fleet created). */
  readonly source?: AzureSecretSource;
}

/** The agent's secrets, read from the SESSIONFLEET_<FLAG> variables (never from argv). */
export function agentSecretEnvs(props: AzureSecretProps, redisUrl: string): SecretEnv[] {
  const envs: SecretEnv[] = [
    { env: AGENT_ENV.redis, secretName: 'redis-url', value: redisUrl, source: props.redisUrl },
  ];
  if (props.upstreamToken !== undefined)
    envs.push({
      env: AGENT_ENV.upstreamToken,
      secretName: 'upstream-token',
      value: secretValue(props.upstreamToken),
      source: props.upstreamToken,
    });
  if (props.adminToken !== undefined)
    envs.push({
      env: AGENT_ENV.adminToken,
      secretName: 'admin-token',
      value: secretValue(props.adminToken),
      source: props.adminToken,
    });
  return envs;
}

/** The app's secret environment variables in name order, each with a Container Apps secret name. */
export function appSecretEnvs(props: AzureSecretProps): SecretEnv[] {
  return Object.entries(props.app?.secretEnv ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([env, source]) => {
      const slug = env
        .toLowerCase()
        .replace(/_+/g, '-')
        .replace(/^-+|-+$/g, '');
      return { env, secretName: `app-${slug === '' ? 'env' : slug}`, value: secretValue(source), source };
    });
}
