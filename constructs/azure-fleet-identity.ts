/**
 * The fleet's user-assigned managed identity: it pulls the app image from an Azure Container
 * Registry (AcrPull) and, on Container Apps, reads Key Vault secrets by reference ("Key Vault
 * Secrets User"), so no registry password and no secret value is written into the container app.
 * User-assigned rather than system-assigned: its roles exist before the app is created, so the
 * first image pull and the first secret read already succeed.
 */
import { RoleAssignment } from '@cdktf/provider-azurerm/lib/role-assignment/index.js';
import { UserAssignedIdentity } from '@cdktf/provider-azurerm/lib/user-assigned-identity/index.js';
import { Construct } from 'constructs';

export interface AzureFleetIdentityProps {
  readonly name: string;
  readonly resourceGroupName: string;
  readonly location: string;
  /** Registry the identity may pull from. */
  readonly containerRegistryId?: string;
  /** Key Vaults (RBAC authorization) whose secrets the identity may read. */
  readonly keyVaultIds: readonly string[];
  readonly tags?: Record<string, string>;
}

export class AzureFleetIdentity extends Construct {
  public readonly identity: UserAssignedIdentity;
  /** Every role the identity holds; the compute depends on them. */
  public readonly roleAssignments: readonly RoleAssignment[];

  constructor(scope: Construct, id: string, props: AzureFleetIdentityProps) {
    super(scope, id);
    this.identity = new UserAssignedIdentity(this, 'Identity', {
      name: `${props.name}-identity`,
      resourceGroupName: props.resourceGroupName,
      location: props.location,
      tags: props.tags,
    });
    const roles: RoleAssignment[] = [];
    if (props.containerRegistryId !== undefined) {
      roles.push(
        new RoleAssignment(this, 'AcrPull', {
          scope: props.containerRegistryId,
          roleDefinitionName: 'AcrPull',
          principalId: this.identity.principalId,
          principalType: 'ServicePrincipal',
        }),
      );
    }
    props.keyVaultIds.forEach((keyVaultId, index) => {
      roles.push(
        new RoleAssignment(this, `KeyVaultSecretsUser${index}`, {
          scope: keyVaultId,
          roleDefinitionName: 'Key Vault Secrets User',
          principalId: this.identity.principalId,
          principalType: 'ServicePrincipal',
        }),
      );
    });
    this.roleAssignments = roles;
  }
}
