import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'deploy/test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    // Tests start real redis-server and worker processes; generous deadlines, not timing claims.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: running many Redis-heavy files at once only makes each slower and flakier.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: process.env.CI ? ['default', 'junit'] : ['default'],
    outputFile: { junit: '.tmp/junit.xml' },
  },
});
