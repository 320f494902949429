/**
 * The `pnpm bench` command line (bench/run.ts is its entry): parses the flags, runs the suite,
 * prints the report and writes it to a markdown file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchConfig, FULL, QUICK } from './config.ts';
import { renderReport } from './report.ts';
import { runSuite, type SuiteResult } from './suite.ts';

const HELP = `Usage: pnpm bench [--quick] [--out <file>]

Benchmarks toolq against a plain BullMQ + QueueEvents barrier, raw BullMQ jobs and in-process
Promise.all, on a private redis-server with its own worker processes (redis-server must be on
the PATH). Prints markdown tables and writes them to a file.

  1. barrier overhead for batches of 1, 10, 50, 100 no-op calls, and lost completions
  2. throughput with 1, 2 and 4 worker processes, toolq vs raw BullMQ (with a Redis profile)
  3. the competitor scenario: nine 500 ms calls in one batch
  4. streaming early dispatch on vs off (runAgent + scripted model)
  5. coordinator heap per pending call with 10,000 batches in flight
  6. the HTTP front door (node:http and @toolq/client) vs Dispatcher.dispatch(), batches of 1 and 10

Options:
  --quick        small iteration counts (CI smoke, under a minute); timings are indicative only
  --out <file>   where to write the report (default docs/benchmarks.md; "-" = do not write)
  -h, --help     show this help

Environment: TOOLQ_BENCH_LOG_LEVEL (default warn) for the bench's workers and coordinator logs.
`;

export interface BenchIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: BenchIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs the command line `argv` (without node and the script). `config` replaces the preset the
 * flags select (tests use a tiny one). Resolves with the exit code.
 */
export async function benchMain(
  argv: string[],
  options: { config?: BenchConfig; io?: BenchIo; onResult?: (result: SuiteResult) => void } = {},
): Promise<number> {
  const io = options.io ?? processIo;
  let values: { quick?: boolean; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        out: { type: 'string', default: 'docs/benchmarks.md' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
      args: argv,
    }));
  } catch (err) {
    io.stderr(`bench: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const config: BenchConfig = options.config ?? (values.quick ? QUICK : FULL);
  const command = ['pnpm bench', ...argv].join(' ');
  const result = await runSuite(config, command, (message) => io.stderr(`bench: ${message}\n`));
  options.onResult?.(result);
  const markdown = renderReport(result);
  io.stdout(`\n${markdown}`);
  if (values.out && values.out !== '-') {
    const path = resolve(process.cwd(), values.out);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, markdown);
    io.stderr(`bench: wrote ${path}\n`);
  }
  return 0;
}
