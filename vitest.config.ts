import { defineConfig } from 'vitest/config';

/**
 * In the workspace, tests import the packages' sources (the `toolq-source` export condition) and so
 * do the processes they start (NODE_OPTIONS); the built output is what the consumer test installs.
 */
const SOURCE_CONDITION = 'toolq-source';
// Vite's own server defaults (vite's defaultServerConditions; vite is not a direct dependency).
const CONDITIONS = [SOURCE_CONDITION, 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions: CONDITIONS },
  ssr: { resolve: { conditions: CONDITIONS } },
  test: {
    env: { NODE_OPTIONS: withSourceCondition(process.env.NODE_OPTIONS) },
    include: [
      'packages/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'test/**/*.test.ts',
      'deploy/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
      'chaos/test/**/*.test.ts',
    ],
    // Tests start real redis-server and worker processes; generous deadlines, not timing claims.
    // Hooks too: a beforeAll that starts three coordinators (each may take up to the 100 s of
    // test-support/ready-line.ts on two loaded cores) is not bounded tighter than a test. Files do
    // not set their own, shorter timeouts (a 30 s test whose waitFor waited 30 s for a call to
    // start): this is the one place.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: running many Redis-heavy files at once only makes each slower and flakier.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // CI reads the counts from the JSON report (.ci/run prints "N passed, N failed").
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.tmp/vitest.json' },
  },
});

function withSourceCondition(nodeOptions = ''): string {
  const flag = `--conditions=${SOURCE_CONDITION}`;
  return nodeOptions.includes(flag) ? nodeOptions : `${nodeOptions} ${flag}`.trim();
}
