export * from './mark.js';
export { Router, type RouterOptions } from './router.js';
export * from './types.js';
