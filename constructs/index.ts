// The construct library's public surface (`sessionfleet`): every platform, so it needs both
// providers; `sessionfleet/kubernetes` and `sessionfleet/azure` load one each.
export * from './azure.js';
export * from './kubernetes.js';
