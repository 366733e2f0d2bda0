/**
 * The Azure Files share that holds session state (SPEC.md §5): every instance of an Azure fleet
 * mounts it at the session-state path, so any instance can resume any session.
 */
import { StorageAccount } from '@cdktf/provider-azurerm/lib/storage-account/index.js';
import { StorageShare } from '@cdktf/provider-azurerm/lib/storage-share/index.js';
import { Construct } from 'constructs';

export interface AzureSessionStateStorageProps {
  readonly resourceGroupName: string;
  readonly location: string;
  /** Global across Azure: 3-24 lowercase letters and digits (checked by the fleet). */
  readonly storageAccountName: string;
  readonly shareName: string;
  /** Size limit of the share. */
  readonly quotaGiB: number;
  /** Whether the account answers on its public endpoint (false behind a private endpoint). */
  readonly publicNetworkAccess?: boolean;
  readonly tags?: Record<string, string>;
}

/**
 * A StorageV2 account (HTTPS only, TLS 1.2, no public blob access) with one SMB file share. Props
 * are validated by the fleet that creates it, which knows the names its users wrote.
 */
export class AzureSessionStateStorage extends Construct {
  public readonly storageAccount: StorageAccount;
  public readonly share: StorageShare;
  /** Reference to the account's name (what a volume mount needs). */
  public readonly accountName: string;
  /** Reference to the account's primary key; sensitive in Terraform, never a value in the JSON. */
  public readonly accessKey: string;
  /** Reference to the share's name. */
  public readonly shareName: string;

  constructor(scope: Construct, id: string, props: AzureSessionStateStorageProps) {
    super(scope, id);
    this.storageAccount = new StorageAccount(this, 'Account', {
      name: props.storageAccountName,
      resourceGroupName: props.resourceGroupName,
      location: props.location,
      accountKind: 'StorageV2',
      accountTier: 'Standard',
      accountReplicationType: 'LRS',
      minTlsVersion: 'TLS1_2',
      httpsTrafficOnlyEnabled: true,
      allowNestedItemsToBePublic: false,
      publicNetworkAccessEnabled: props.publicNetworkAccess === false ? false : undefined,
      tags: props.tags,
    });
    this.share = new StorageShare(this, 'Share', {
      name: props.shareName,
      storageAccountId: this.storageAccount.id,
      quota: props.quotaGiB,
      enabledProtocol: 'SMB',
    });
    this.accountName = this.storageAccount.name;
    this.accessKey = this.storageAccount.primaryAccessKey;
    this.shareName = this.share.name;
  }
}
