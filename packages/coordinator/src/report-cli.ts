#!/usr/bin/env node
/**
 * `pnpm report [--window 15m] [--json]`: the fleet's performance report, read from the call log in
 * Redis (REDIS_URL, TOOLQ_PREFIX), with no coordinator needed.
 */
import { readFileSync } from 'node:fs';
import { loadConfig } from '@toolq/shared';
import { CallLog, closeRedis, createRedis, describeStartupError } from '@toolq/shared/internal';
import { Command } from 'commander';
import { DEFAULT_REPORT_WINDOW, fleetReport, formatFleetReport, parseWindow } from './fleet-report.ts';
import { wireReport } from './http/wire.ts';

/** This package's version, for `--version` (package.json sits one level above src/ and dist/ alike). */
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('toolq-report')
  .version(version)
  .description(
    "Print the fleet's per-tool performance report (calls, avg, p95, max; success rate) from Redis.",
  )
  .option('-w, --window <duration>', 'how far back: 30s, 15m, 2h, 1d (at most 24h)', DEFAULT_REPORT_WINDOW)
  .option('--json', 'print the report as JSON, as GET /v1/report answers it (snake_case)')
  .addHelpText('after', '\nEnvironment: REDIS_URL, TOOLQ_PREFIX.');

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{ window: string; json?: boolean }>();
  parseWindow(flags.window); // a bad window fails before connecting
  const config = loadConfig();
  const redis = createRedis(config.redis, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined); // the command's own failure says it
  try {
    const report = await fleetReport(new CallLog({ redis, prefix: config.prefix }), flags.window);
    // The same JSON as GET /v1/report, so that one parser reads both.
    const json = () => JSON.stringify(wireReport(report), null, 2);
    process.stdout.write(`${flags.json ? json() : formatFleetReport(report)}\n`);
  } finally {
    await closeRedis(redis);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`toolq-report: ${describeStartupError(err)}\n`);
  process.exit(2);
});
