import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'deploy/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
    ],
    // Tests start real redis-server and worker processes; generous deadlines, not timing claims.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: running many Redis-heavy files at once only makes each slower and flakier.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // CI reads the counts from the JSON report (.ci/run prints "N passed, N failed").
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.tmp/vitest.json' },
  },
});
