// `sessionfleet/kubernetes`: the Kubernetes constructs; needs only @cdktf/provider-kubernetes.
export * from './common.js';
export * from './kubernetes-session-fleet.js';

import './kubernetes-summary.js';
