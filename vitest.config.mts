import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests spawn real processes and servers; two workers match the two cores.
    pool: 'forks',
    maxWorkers: 2,
    env: { TZ: 'UTC' },
    // No test reaches a real collector, HOME or ~/.claude: see the file.
    globalSetup: ['test/helpers/leak-guard.ts'],
  },
});
