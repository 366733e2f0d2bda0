// `sessionfleet/azure`: the Azure constructs; needs only @cdktf/provider-azurerm.
export * from './azure-container-apps-session-fleet.js';
export * from './azure-container-instances-session-fleet.js';
export * from './common.js';

import './azure-summary.js';
