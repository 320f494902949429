/**
 * The coordinator's HTTP API (Fastify): tool batches for apps that do not speak BullMQ, the tool
 * catalog, Prometheus metrics, health and readiness.
 */
import { describeZodIssues, type Logger, ToolqError } from '@toolq/shared';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { BatchResult } from '../batch-result.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { DEFAULT_REPORT_WINDOW, fleetReport } from '../fleet-report.ts';
import { refreshGauges } from '../queue-gauges.ts';
import { registerAdmin } from './admin.ts';
import { assertSafeListen, bearerMatches } from './auth.ts';
import { type RunsOptions, registerRuns } from './runs.ts';
import { batchIdSchema, toolBatchRequestSchema } from './schemas.ts';

export interface HttpServerOptions {
  dispatcher: Dispatcher;
  /** Bearer token; required for /v1/* when set. Default: none (loopback only). */
  apiToken?: string;
  /** Largest request body. Default 10 MiB. */
  bodyLimitBytes?: number;
  logger?: Logger;
  /** The model of agent runs (POST /v1/runs); without it that endpoint answers 503. */
  model?: RunsOptions['model'];
  /** Retries and removals on /admin/queues (TOOLQ_ADMIN_WRITE). Default false: read-only. */
  adminWrite?: boolean;
}

const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export function buildHttpServer(options: HttpServerOptions): FastifyInstance {
  const { dispatcher, apiToken } = options;
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes ?? 10 * 1024 * 1024,
    // Let in-flight batches finish on close; idle keep-alive sockets need not hold shutdown up.
    forceCloseConnections: 'idle',
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(Object.assign(err as Error, { statusCode: 400, code: 'INVALID_JSON' }), undefined);
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

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) options.logger?.error({ err: error.message }, 'request failed');
    const message = status >= 500 ? 'internal error' : describeFastifyError(error);
    return reply.code(status).send({ error: { code: error.code ?? 'ERROR', message } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` } }),
  );

  if (apiToken) {
    app.addHook('onRequest', async (request, reply) => {
      if (OPEN_PATHS.has(request.url.split('?')[0] ?? '')) return;
      if (!bearerMatches(request.headers.authorization, apiToken)) {
        reply.header('www-authenticate', 'Bearer');
        return reply
          .code(401)
          .send({ error: { code: 'UNAUTHORIZED', message: 'missing or wrong bearer token' } });
      }
    });
  }

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    const ready = await dispatcher.isReady();
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  app.get('/metrics', async (_request, reply) => {
    await refreshGauges(dispatcher).catch(() => undefined);
    reply.header('content-type', dispatcher.registry.contentType);
    return dispatcher.registry.metrics();
  });

  app.get('/v1/tools', async () => {
    await dispatcher.catalog.refresh();
    return { tools: dispatcher.catalog.list() };
  });

  registerAdmin(app, { dispatcher, write: options.adminWrite ?? false });

  registerRuns(app, {
    dispatcher,
    ...(options.model ? { model: options.model } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });

  app.get<{ Querystring: { window?: string } }>('/v1/report', async (request, reply) => {
    try {
      return await fleetReport(dispatcher.callLog, request.query.window ?? DEFAULT_REPORT_WINDOW);
    } catch (err) {
      if (!(err instanceof ToolqError) || err.code !== 'INVALID_INPUT') throw err;
      return reply.code(400).send({ error: { code: 'INVALID_REQUEST', message: err.message } });
    }
  });

  app.post('/v1/tool-batches', async (request, reply) => {
    const parsed = toolBatchRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      return reply.code(400).send({
        error: { code: 'INVALID_REQUEST', message: `invalid body: ${describeZodIssues(parsed.error, 10)}` },
      });
    }
    const body = parsed.data;
    const controller = new AbortController();
    // A client that hangs up does not keep its calls running.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('the HTTP client disconnected'));
    });
    try {
      const result = await dispatcher.dispatch(body.tool_uses, {
        ...(body.timeout_ms !== undefined ? { timeoutMs: body.timeout_ms } : {}),
        ...(body.failure_policy ? { failurePolicy: body.failure_policy } : {}),
        ...(body.max_retries !== undefined ? { maxRetries: body.max_retries } : {}),
        ...(body.batch_id ? { batchId: body.batch_id } : {}),
        signal: controller.signal,
      });
      return batchResponse(result);
    } catch (err) {
      const status = err instanceof ToolqError ? ERROR_STATUS[err.code] : undefined;
      if (err instanceof ToolqError && status) {
        return reply.code(status).send({ error: { code: err.code, message: err.message } });
      }
      throw err;
    }
  });

  app.get<{ Params: { id: string } }>('/v1/tool-batches/:id', async (request, reply) => {
    const id = batchIdSchema.safeParse(request.params.id);
    if (!id.success) {
      return reply
        .code(400)
        .send({ error: { code: 'INVALID_REQUEST', message: `batch id: ${describeZodIssues(id.error)}` } });
    }
    const result = await dispatcher.collect(id.data);
    if (!result) {
      return reply.code(404).send({
        error: {
          code: 'NOT_FOUND',
          message: `no batch ${id.data} is recorded (never dispatched here, or expired)`,
        },
      });
    }
    return batchResponse(result);
  });

  return app;
}

function describeFastifyError(error: FastifyError): string {
  switch (error.code) {
    case 'INVALID_JSON':
      return `the body is not valid JSON: ${error.message}`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `the body is larger than the limit (${error.message})`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'send the body as application/json';
    default:
      return error.message;
  }
}

const ERROR_STATUS: Partial<Record<ToolqError['code'], number>> = { SHUTTING_DOWN: 503, BATCH_EXISTS: 409 };

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

/** JSON.parse, refusing `__proto__` keys anywhere (they pollute objects downstream). */
function parseJsonBody(body: string): unknown {
  if (body.trim() === '') throw new Error('the body is empty');
  return JSON.parse(body, (key, value) => {
    if (key === '__proto__') throw new Error('a "__proto__" key is not allowed');
    return value;
  });
}

export async function listen(
  app: FastifyInstance,
  options: { host: string; port: number; apiToken?: string },
) {
  assertSafeListen(options.host, options.apiToken);
  return app.listen({ host: options.host, port: options.port });
}
