/**
 * `pnpm bench [--quick] [--out docs/benchmarks.md]`: the benchmark suite of issue 5 (see
 * bench/main.ts and docs/benchmarks.md). Starts its own redis-server and worker processes, prints
 * the tables and writes them, with the environment, to a markdown file.
 */
import { benchMain } from './main.ts';

benchMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
