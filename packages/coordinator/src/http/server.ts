/**
 * The coordinator's HTTP API (Fastify): tool batches for apps that do not speak BullMQ, the tool
 * catalog, Prometheus metrics, health and readiness.
 */
import { type Logger, ToolqError } from '@toolq/shared';
import { DEFAULTS, describeZodIssues, withinRedis } from '@toolq/shared/internal';
import Fastify, { type FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import type { BatchResult } from '../batch-result.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { DEFAULT_REPORT_WINDOW, fleetReport } from '../fleet-report.ts';
import { refreshGauges } from '../queue-gauges.ts';
import { registerAdmin } from './admin.ts';
import { AppTokens, appOf, assertSafeListen, isOpenPath, registerAuth } from './auth.ts';
import { toHttpError } from './errors.ts';
import { JsonShapeScanner } from './json-shape.ts';
import { registerOpenApi } from './openapi.ts';
import { type RunsOptions, registerRuns } from './runs.ts';
import { batchIdSchema, MAX_TOOL_USES_PER_BATCH, toolBatchRequestSchema } from './schemas.ts';

export interface HttpServerOptions {
  dispatcher: Dispatcher;
  /** Bearer token (the app `default`); required for /v1/* when set. Default: none (loopback only). */
  apiToken?: string;
  /** App name → bearer token (TOOLQ_API_TOKENS); each app sees only its own runs and batches. */
  apiTokens?: ReadonlyMap<string, string>;
  /** Largest request body. Default 10 MiB. */
  bodyLimitBytes?: number;
  /** How long a client may take to send a request's headers and body (slow senders hold sockets). Default 30 s. */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** Durable agent runs (/v1/runs*); without it those routes answer 503. */
  runs?: RunsOptions['runs'];
  /** Retries and removals on /admin/queues (TOOLQ_ADMIN_WRITE). Default false: read-only. */
  adminWrite?: boolean;
  /**
   * False while the dispatcher is still starting (the server listens first, so that /healthz and
   * a /readyz that says why answer while Redis cannot be reached). Default: started.
   */
  isStarted?: () => boolean;
}

export const HTTP_DEFAULTS = {
  bodyLimitBytes: DEFAULTS.bodyLimitBytes,
  requestTimeoutMs: DEFAULTS.requestTimeoutMs,
  /** Deeper bodies are refused before parsing: JSON.stringify and validators recurse. */
  maxBodyDepth: 200,
  /** How long a route waits for Redis before answering 503. */
  redisWaitMs: 5_000,
} as const;

const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export function buildHttpServer(options: HttpServerOptions): FastifyInstance {
  const { dispatcher } = options;
  const requestTimeout = options.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs;
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes ?? HTTP_DEFAULTS.bodyLimitBytes,
    // Let in-flight batches finish on close; idle keep-alive sockets need not hold shutdown up.
    forceCloseConnections: 'idle',
    // Node checks these every connectionsCheckingInterval (30 s by default): a body sent one byte
    // every few seconds is cut off within a second of the limit instead.
    requestTimeout,
    http: { headersTimeout: Math.min(10_000, requestTimeout), connectionsCheckingInterval: 1_000 },
  });

  // The JSON parser Fastify itself uses (secure-json-parse, refusing prototype poisoning), called
  // here so that its message (where the JSON breaks, which key is refused) reaches the client;
  // after a scan that refuses absurd shapes before anything is parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      // Stops at the first byte that breaks a limit: a refused body costs no parsing at all.
      new JsonShapeScanner({ maxDepth: HTTP_DEFAULTS.maxBodyDepth, maxItems: MAX_TOOL_USES_PER_BATCH }).scan(
        body as Buffer,
      );
      done(null, parseJsonBody((body as Buffer).toString('utf8')));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // While closing, answers end their connection: a kept-alive socket would otherwise hold the
  // shutdown for Fastify's keep-alive timeout (72 s) after the last in-flight batch.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((error, _request, reply) => {
    const { status, body, internal } = toHttpError(error);
    if (internal) options.logger?.error({ err: (error as Error).message }, 'request failed');
    // A client refused before its body was read has no reason to keep the socket.
    if (status === 400 || status === 413 || status === 415) reply.header('connection', 'close');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request) => {
    throw new ToolqError('NOT_FOUND', `no route ${request.method} ${request.url}`);
  });

  registerAuth(app, new AppTokens(options), OPEN_PATHS);
  const started = options.isStarted ?? (() => true);
  app.addHook('onRequest', async (request) => {
    if (started() || isOpenPath(request, OPEN_PATHS)) return;
    // No probe per request: during an outage each would wait in the connection's queue.
    throw new ToolqError(
      'REDIS_UNAVAILABLE',
      'the coordinator is still starting: connecting to Redis and loading the tool catalog (GET /readyz says why it is not ready)',
    );
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    const why = await dispatcher.readiness();
    const reason = started()
      ? why
      : `the coordinator is still starting: ${why ?? 'loading the tool catalog'}`;
    return reply.code(reason ? 503 : 200).send(reason ? { ready: false, reason } : { ready: true });
  });
  app.get('/metrics', async (_request, reply) => {
    await withinRedis(refreshGauges(dispatcher), HTTP_DEFAULTS.redisWaitMs).catch(() => undefined);
    reply.header('content-type', dispatcher.registry.contentType);
    return dispatcher.registry.metrics();
  });

  app.get('/v1/tools', async () => {
    await withinRedis(dispatcher.catalog.refresh(), HTTP_DEFAULTS.redisWaitMs);
    return { tools: dispatcher.catalog.list() };
  });

  registerAdmin(app, { dispatcher, write: options.adminWrite ?? false });

  registerRuns(app, { runs: options.runs, logger: options.logger });

  registerOpenApi(app);

  app.get<{ Querystring: { window?: string } }>('/v1/report', async (request) =>
    withinRedis(
      fleetReport(dispatcher.callLog, request.query.window ?? DEFAULT_REPORT_WINDOW),
      HTTP_DEFAULTS.redisWaitMs,
    ),
  );

  app.post('/v1/tool-batches', async (request, reply) => {
    const parsed = toolBatchRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      throw new ToolqError('INVALID_REQUEST', `invalid body: ${describeZodIssues(parsed.error, 10)}`);
    }
    const body = parsed.data;
    const controller = new AbortController();
    // A client that hangs up does not keep its calls running.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('the HTTP client disconnected'));
    });
    const result = await dispatcher.dispatch(body.tool_uses, {
      timeoutMs: body.timeout_ms,
      failurePolicy: body.failure_policy,
      maxRetries: body.max_retries,
      batchId: body.batch_id,
      // Batch ids are the app's own: another app may use the same id and never sees this batch.
      app: appOf(request),
      signal: controller.signal,
    });
    return batchResponse(result);
  });

  app.get<{ Params: { id: string } }>('/v1/tool-batches/:id', async (request) => {
    const id = batchIdSchema.safeParse(request.params.id);
    if (!id.success) throw new ToolqError('INVALID_REQUEST', `batch id: ${describeZodIssues(id.error)}`);
    // Only the lookup waits on Redis here; once found, the batch answers by its own deadlines.
    const result = await dispatcher.collect(id.data, {
      app: appOf(request),
      lookupTimeoutMs: HTTP_DEFAULTS.redisWaitMs,
    });
    if (!result) {
      throw new ToolqError('NOT_FOUND', `no batch ${id.data} is recorded (never dispatched, or expired)`);
    }
    return batchResponse(result);
  });

  return app;
}

function parseJsonBody(body: string): unknown {
  if (body.trim() === '')
    throw new ToolqError('INVALID_JSON', 'the body is not valid JSON: the body is empty');
  try {
    return secureJson.parse(body, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const message = (err as Error).message
      .replace('Object contains forbidden prototype property', 'a "__proto__" key is not allowed')
      .replace(
        'Object contains forbidden constructor property',
        'a "constructor.prototype" key is not allowed',
      );
    throw new ToolqError('INVALID_JSON', `the body is not valid JSON: ${message}`);
  }
}

function batchResponse(result: BatchResult) {
  return {
    batch_id: result.batchId,
    tool_results: result.toolResults,
    stats: {
      wall_ms: result.wallMs,
      slowest_run_ms: result.slowestRunMs,
      overhead_ms: result.overheadMs,
      calls: result.calls,
    },
  };
}

export async function listen(
  app: FastifyInstance,
  options: { host: string; port: number; apiToken?: string; apiTokens?: ReadonlyMap<string, string> },
) {
  assertSafeListen(options.host, Boolean(options.apiToken) || (options.apiTokens?.size ?? 0) > 0);
  return app.listen({ host: options.host, port: options.port });
}
