import { defineConfig } from 'vitest/config';

/**
 * Two tiers, chosen by file name. `fast` (`npm test`): unit and in-process tests — no
 * redis-server, no child processes. `e2e` (`npm run test:e2e`, files named `*.e2e.test.ts`): real
 * redis-server, agents, MCP servers, the Copilot CLI and SDK, cdktf and npm in processes of their
 * own. A file path given on the command line runs in whichever tier it belongs to.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    // Seeds every fast-check property (FC_SEED, else a fixed default).
    setupFiles: ['test/helpers/fast-check-seed.ts'],
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
    projects: [
      {
        extends: true,
        test: {
          name: 'fast',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.e2e.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.e2e.test.ts'],
          // One private redis-server for the tier; tests reach it through `inject('redisUrl')`.
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
