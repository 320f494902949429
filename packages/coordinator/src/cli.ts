#!/usr/bin/env node
/**
 * `toolq-coordinator` / `pnpm coordinator`: the HTTP API in front of a Dispatcher. The only place
 * in this package's server side that touches `process`: signals, exit codes, the environment.
 */
import { readFileSync } from 'node:fs';
import { createLogger, loadConfig, startTracing } from '@toolq/shared';
import { describeRedis, describeStartupError, listenError } from '@toolq/shared/internal';
import { Command, InvalidArgumentError } from 'commander';
import { Dispatcher } from './dispatcher.ts';
import { assertSafeListen } from './http/auth.ts';
import { buildHttpServer, listen } from './http/server.ts';
import { McpService } from './mcp-server/service.ts';
import { RunService } from './runs/run-service.ts';

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('port must be 0-65535');
  return n;
};

/** This package's version, for `--version` (package.json sits one level above src/ and dist/ alike). */
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('toolq-coordinator')
  .version(version)
  .description('Serve the toolq HTTP API: run tool batches on toolq workers through Redis.')
  .option(
    '--host <host>',
    'listen address [env TOOLQ_HOST, default 127.0.0.1]; beyond loopback needs TOOLQ_API_TOKEN',
  )
  .option('--port <port>', 'listen port, 0 = any [env TOOLQ_PORT, default 8080]', port)
  .addHelpText(
    'after',
    '\nEndpoints: POST /v1/tool-batches, GET /v1/tool-batches/:id, POST /v1/runs, GET /v1/runs,\n' +
      'GET /v1/runs/:id, GET /v1/runs/:id/events (SSE), DELETE /v1/runs/:id, GET /v1/tools, GET /v1/report,\n' +
      '/admin/queues, ' +
      'GET /metrics, GET /healthz, GET /readyz.\n' +
      'Environment: REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS + REDIS_SENTINEL_MASTER; REDIS_USERNAME,\n' +
      'REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD, REDIS_TLS, REDIS_TLS_CA_FILE), TOOLQ_PREFIX, TOOLQ_HOST, TOOLQ_PORT, TOOLQ_API_TOKEN, TOOLQ_API_TOKENS,\n' +
      'TOOLQ_COORDINATOR_ID, TOOLQ_RUN_RETENTION_MS, TOOLQ_RUN_TAKEOVER_MS, TOOLQ_RUN_CONCURRENCY,\n' +
      'TOOLQ_MAX_RUN_INPUT_BYTES, TOOLQ_MAX_ACTIVE_RUNS_PER_APP, TOOLQ_MODEL_TIMEOUT_MS, TOOLQ_MAX_STREAMS_PER_APP, TOOLQ_TOOL_SETS, ' +
      'ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, TOOLQ_MODEL (agent runs), ' +
      'TOOLQ_BODY_LIMIT_BYTES, TOOLQ_REQUEST_TIMEOUT_MS, TOOLQ_BATCH_RETENTION_MS, TOOLQ_JOB_HISTORY_MS, TOOLQ_JOB_HISTORY_COUNT,\n' +
      'TOOLQ_MAX_BATCH_RESULT_BYTES, ' +
      'TOOLQ_SHUTDOWN_TIMEOUT_MS, TOOLQ_LOG_LEVEL, TOOLQ_ADMIN_WRITE, OTEL_EXPORTER_OTLP_ENDPOINT.\n' +
      'SIGTERM/SIGINT: stop accepting, let in-flight batches finish (up to TOOLQ_SHUTDOWN_TIMEOUT_MS), then\n' +
      'answer what is left as cancelled. A second signal exits at once.',
  );

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{ host?: string; port?: number }>();
  const config = loadConfig();
  const logger = createLogger({ name: 'toolq-coordinator', level: config.logLevel });
  const host = flags.host ?? config.host;
  const listenPort = flags.port ?? config.port;

  const tracing = config.otlpEndpoint
    ? await startTracing({ serviceName: 'toolq-coordinator', endpoint: config.otlpEndpoint })
    : undefined;
  const dispatcher = new Dispatcher({
    redis: config.redis,
    prefix: config.prefix,
    coordinatorId: config.coordinatorId,
    batchRetentionMs: config.batchRetentionMs,
    deadWorkerAfterMs: config.deadWorkerAfterMs,
    stalledWorkerAfterMs: config.stalledWorkerAfterMs,
    jobHistoryMs: config.jobHistoryMs,
    jobHistoryCount: config.jobHistoryCount,
    maxBatchResultBytes: config.maxBatchResultBytes,
    logger,
  });
  const runs = new RunService({
    redis: config.redis,
    prefix: config.prefix,
    dispatcher,
    logger,
    retentionMs: config.runRetentionMs,
    takeoverMs: config.runTakeoverMs,
    concurrency: config.runConcurrency,
    parkMinMs: config.runParkMinMs,
    maxInputBytes: config.maxRunInputBytes,
    maxActivePerApp: config.maxActiveRunsPerApp,
    maxStreamsPerApp: config.maxStreamsPerApp,
    toolSets: config.toolSets,
    model:
      config.anthropicApiKey || config.anthropicBaseUrl
        ? {
            ...(config.anthropicApiKey ? { apiKey: config.anthropicApiKey } : {}),
            ...(config.anthropicBaseUrl ? { baseURL: config.anthropicBaseUrl } : {}),
            ...(config.model ? { defaultModel: config.model } : {}),
            timeoutMs: config.modelTimeoutMs,
          }
        : undefined,
  });
  // The fleet as an MCP server on /mcp (docs/mcp-server.md).
  const mcp = new McpService({ dispatcher, redis: config.redis, prefix: config.prefix, logger, version });
  const auth = {
    ...(config.apiToken ? { apiToken: config.apiToken } : {}),
    apiTokens: config.apiTokens,
    operatorTokens: config.operatorTokens,
  };
  const anyToken = Boolean(config.apiToken) || config.apiTokens.size > 0 || config.operatorTokens.size > 0;
  let started = false;
  const app = buildHttpServer({
    dispatcher,
    isStarted: () => started,
    bodyLimitBytes: config.bodyLimitBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    adminWrite: config.adminWrite,
    allowedHosts: config.allowedHosts,
    logger,
    runs,
    mcp,
    ...auth,
  });
  // Checked before connecting anywhere, so a misconfiguration fails fast with its own message.
  assertSafeListen(host, anyToken);
  // Listening first: while Redis cannot be reached, /healthz answers and /readyz says why.
  const url = await listen(app, { host, port: listenPort, ...auth }).catch((err: unknown) => {
    throw listenError(err, {
      server: 'HTTP server',
      host,
      port: listenPort,
      portSetting: 'TOOLQ_PORT (or --port)',
      hostSetting: 'TOOLQ_HOST (or --host)',
    });
  });
  process.stdout.write(`${JSON.stringify({ event: 'listening', url })}\n`);
  await dispatcher.start();
  await runs.start();
  await mcp.start();
  started = true;
  logger.info(
    {
      url,
      redis: describeRedis(config.redis),
      // App and operator names only: tokens are never logged.
      auth: anyToken,
      apps: [...(config.apiToken ? ['default'] : []), ...config.apiTokens.keys()],
      operators: [...config.operatorTokens.keys()],
      toolSets: Object.fromEntries(config.toolSets),
    },
    'coordinator listening',
  );
  process.stdout.write(`${JSON.stringify({ event: 'ready', url, coordinator: dispatcher.coordinatorId })}\n`);

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal, inFlight: dispatcher.inFlight }, 'shutting down: letting in-flight batches finish');
    const force = setTimeout(() => {
      logger.warn('in-flight batches did not finish in time: answering them as cancelled');
      runs.handOverNow();
      dispatcher.cancelAll('the coordinator is shutting down');
      // A kept-alive socket Fastify still counts as busy (seen after aborted requests) would hold
      // app.close() for the 72 s keep-alive timeout. A second later the cancelled answers above
      // are written; then whatever is still open is closed.
      setTimeout(() => app.server.closeAllConnections(), 1_000).unref();
    }, config.shutdownTimeoutMs);
    force.unref();
    // Runs hand over at their next step (the current one finishes and is saved), then batches drain.
    Promise.all([app.close(), runs.close()])
      .then(() => mcp.close())
      .then(() => dispatcher.close())
      .then(() => tracing?.shutdown())
      .then(() => process.exit(0))
      .catch((err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  process.stderr.write(`toolq-coordinator: ${describeStartupError(err)}\n`);
  process.exit(2);
});
