#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { type AnyTool, createLogger, loadConfig, startTracing } from '@toolq/shared';
import {
  closeRedis,
  createKeys,
  createRedis,
  createRegistry,
  DEFAULTS,
  describeStartupError,
  listenError,
  type Redis,
  whyNotWritable,
} from '@toolq/shared/internal';
/**
 * `toolq-worker` / `pnpm worker`: serve a tool module on a pool. The only place in this package that
 * touches `process`: signals, exit codes, the environment.
 */
import { Command, InvalidArgumentError } from 'commander';
import { startHealthServer } from './health-server.ts';
import { loadMcpConfig } from './mcp/config.ts';
import { type McpTools, startMcpTools } from './mcp/mcp-tools.ts';
import { BUILT_IN_TOOL_MODULES, loadToolModule } from './tool-modules.ts';
import { startWorker, type ToolqWorker } from './worker.ts';

const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number >= 0`);
  return n;
};

/** This package's version, for `--version` (package.json sits one level above src/ and dist/ alike). */
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('toolq-worker')
  .version(version)
  .description(
    'Run tool calls from a toolq queue (BullMQ on Redis). Configuration comes from the environment; flags override it.',
  )
  .option(
    '-t, --tools <module>',
    `tools to serve: ${BUILT_IN_TOOL_MODULES.join(', ')}, or a module path whose default export is an array of tools`,
  )
  .option(
    '--mcp <config.json>',
    'serve the tools of the MCP servers in this file ("mcpServers" format), as <server>__<tool>',
  )
  .option('-p, --pool <name>', `queue (pool) to serve [env TOOLQ_POOL, default "${DEFAULTS.pool}"]`)
  .option(
    '-c, --concurrency <n>',
    `BullMQ jobs run at once, per queue consumed [env TOOLQ_CONCURRENCY, default ${DEFAULTS.concurrency}]`,
    positiveInt('concurrency'),
  )
  .option(
    '--metrics-port <port>',
    `port of /metrics, /healthz, /readyz; 0 = any free one, printed in the "listening" line [env TOOLQ_METRICS_PORT, default ${DEFAULTS.metricsPort}]`,
    positiveInt('metrics port'),
  )
  .option(
    '--metrics-host <host>',
    `address the metrics server binds; 0.0.0.0 for Prometheus on another machine [env TOOLQ_METRICS_HOST, default ${DEFAULTS.metricsHost}]`,
  )
  .option('--no-metrics', 'do not start the metrics/health server')
  .option(
    '--wait-for-workers',
    'this pool may scale to zero: its calls wait in the queue for a worker instead of failing at once [env TOOLQ_WAIT_FOR_WORKERS]',
  )
  .addHelpText(
    'after',
    '\nEnvironment: REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS + REDIS_SENTINEL_MASTER;\n' +
      'REDIS_USERNAME, REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD, REDIS_TLS, REDIS_TLS_CA_FILE), TOOLQ_PREFIX, TOOLQ_POOL, TOOLQ_CONCURRENCY, TOOLQ_METRICS_PORT,\n' +
      'TOOLQ_METRICS_HOST, ' +
      'TOOLQ_DEFAULT_TIMEOUT_MS, TOOLQ_MAX_RESULT_BYTES, TOOLQ_SHUTDOWN_TIMEOUT_MS, TOOLQ_LOG_LEVEL.\n' +
      'SIGTERM/SIGINT: stop taking jobs and finish running ones (up to TOOLQ_SHUTDOWN_TIMEOUT_MS), then give the rest back.\n' +
      'A second signal gives running calls back at once.',
  );

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{
    tools?: string;
    mcp?: string;
    pool?: string;
    concurrency?: number;
    metricsPort?: number;
    metricsHost?: string;
    metrics: boolean;
    waitForWorkers?: boolean;
  }>();
  if (!flags.tools && !flags.mcp) program.error('error: give --tools <module>, --mcp <config.json>, or both');
  const config = loadConfig();
  const logger = createLogger({ name: 'toolq-worker', level: config.logLevel });
  const tools: AnyTool[] = flags.tools ? await loadToolModule(flags.tools) : [];
  const registry = createRegistry({ labels: { component: 'worker' } });
  // Serving first: while Redis cannot be reached, /healthz answers and /readyz says why, from a
  // connection of its own, opened only if /readyz is asked before the worker runs.
  let running: ToolqWorker | undefined;
  let startupProbe: Redis | undefined;
  const probeKeys = [createKeys(config.prefix).workersProbe()];
  const whileStarting = async (): Promise<string> => {
    startupProbe ??= createRedis(config.redis).on('error', () => undefined);
    return `the worker is still starting: ${(await whyNotWritable(startupProbe, probeKeys)) ?? 'connecting to Redis'}`;
  };
  const metricsAt = {
    host: flags.metricsHost ?? config.metricsHost,
    port: flags.metricsPort ?? config.metricsPort,
  };
  const health = flags.metrics
    ? await startHealthServer({
        registry,
        readiness: () => (running ? running.readiness() : whileStarting()),
        ...metricsAt,
      }).catch((err: unknown) => {
        throw listenError(err, {
          server: 'metrics server',
          ...metricsAt,
          portSetting: 'TOOLQ_METRICS_PORT (or --metrics-port; --no-metrics for none)',
          hostSetting: 'TOOLQ_METRICS_HOST (or --metrics-host)',
        });
      })
    : undefined;
  if (health) {
    logger.info({ listen: health.listen, url: health.url }, 'metrics and health server listening');
    process.stdout.write(`${JSON.stringify({ event: 'listening', metrics: health.url })}\n`);
  }
  let mcp: McpTools | undefined;
  if (flags.mcp) {
    const servers = await loadMcpConfig(flags.mcp);
    mcp = await startMcpTools({ servers, reservedNames: tools.map((t) => t.name), logger, registry });
  }
  const tracing = config.otlpEndpoint
    ? await startTracing({ serviceName: 'toolq-worker', endpoint: config.otlpEndpoint })
    : undefined;
  // The MCP servers run in their own process groups: stop them if the worker cannot start.
  const worker = await startWorker({
    tools,
    toolSource: mcp,
    registry,
    redis: config.redis,
    prefix: config.prefix,
    pool: flags.pool ?? config.pool,
    waitForWorkers: flags.waitForWorkers ?? config.waitForWorkers,
    concurrency: flags.concurrency ?? config.concurrency,
    defaultTimeoutMs: config.defaultTimeoutMs,
    maxResultBytes: config.maxResultBytes,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    logger,
  }).catch(async (err: unknown) => {
    await mcp?.close();
    throw err;
  });
  running = worker;
  if (startupProbe) void closeRedis(startupProbe);
  // Machine-readable line for supervisors and tests that wait for readiness.
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', worker: worker.id, pool: worker.pool, metrics: health?.url })}\n`,
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'shutting down (send again to force)');
      worker
        .close()
        .then(() => mcp?.close())
        .then(() => health?.server.close())
        .then(() => tracing?.shutdown())
        .then(() => process.exit(0))
        .catch((err: Error) => {
          logger.error({ err: err.message }, 'shutdown failed');
          process.exit(1);
        });
    } else {
      logger.warn({ signal }, 'forced shutdown: giving running calls back');
      const timer = setTimeout(() => process.exit(130), 2_000);
      timer.unref();
      worker
        .forceClose()
        .then(() => mcp?.close())
        .finally(() => process.exit(130));
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  process.stderr.write(`toolq-worker: ${describeStartupError(err)}\n`);
  process.exit(2);
});
