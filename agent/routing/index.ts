export { BUDGET_SYNC_MS, BudgetSharing } from './budget-sharing.js';
export { type BudgetKind, Budgets, type BudgetUse } from './budgets.js';
export * from './mark.js';
export { isPrincipalPin, principalPinId } from './principal-pin.js';
export { Router, type RouterOptions } from './router.js';
export * from './types.js';
