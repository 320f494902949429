/**
 * Agent runs over HTTP, from any coordinator of the fleet: POST /v1/runs starts a durable run
 * (runs/run-service.ts) and answers 202 with its id at once; GET /v1/runs lists the caller's runs;
 * GET /v1/runs/:id tells how one is going; GET /v1/runs/:id/events streams its event log (SSE);
 * DELETE /v1/runs/:id cancels it. A run belongs to the app whose token created it: to any other
 * app it does not exist (404).
 */
import type { ServerResponse } from 'node:http';
import { type Logger, ToolqError, type ToolqErrorCode } from '@toolq/shared';
import { describeZodIssues } from '@toolq/shared/internal';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { RunService } from '../runs/run-service.ts';
import { FINAL_EVENTS, type RunRecord } from '../runs/run-store.ts';
import { appOf } from './auth.ts';
import {
  eventIdSchema,
  idempotencyKeySchema,
  runEventsQuerySchema,
  runListQuerySchema,
  runParamsSchema,
  runRequestSchema,
  type runResponseSchema,
} from './run-schemas.ts';

export interface RunsOptions {
  /** Without it every run route answers 503. */
  runs?: RunService | undefined;
  logger?: Logger | undefined;
}

/** How long an SSE stream waits on Redis before it sends a keep-alive comment. */
const SSE_KEEPALIVE_MS = 15_000;

/** Thrown to the server's error handler, which answers with the code's status (errors.ts). */
const fail = (code: ToolqErrorCode, message: string): never => {
  throw new ToolqError(code, message);
};

export function registerRuns(app: FastifyInstance, options: RunsOptions): void {
  const { runs } = options;
  const streams = new Set<ServerResponse>();
  // SSE answers are hijacked: close() would otherwise wait for their clients to hang up.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  const notFound = (id: string) => fail('NOT_FOUND', `no run ${id} (unknown, expired, or another app's)`);
  const runIdOf = (params: unknown): string => {
    const parsed = runParamsSchema.safeParse(params);
    return parsed.success ? parsed.data.id : fail('INVALID_REQUEST', `run id: ${valueIssue(parsed.error)}`);
  };

  app.addHook('onRequest', async (request) => {
    if (!runs && request.url.startsWith('/v1/runs')) {
      return fail('NO_MODEL', 'agent runs are not set up on this coordinator (no model is configured)');
    }
  });
  if (!runs) return;

  app.post('/v1/runs', async (request, reply) => {
    if (!runs.hasModel) {
      return fail('NO_MODEL', 'no model is configured: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL)');
    }
    const parsed = runRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      return fail('INVALID_REQUEST', `invalid body: ${describeZodIssues(parsed.error, 10)}`);
    }
    const header = request.headers['idempotency-key'];
    let key: string | undefined;
    if (header !== undefined) {
      const checked = idempotencyKeySchema.safeParse(header);
      if (!checked.success) {
        return fail('INVALID_REQUEST', `Idempotency-Key header: ${valueIssue(checked.error)}`);
      }
      key = checked.data;
    }
    // A reused key with another request throws IDEMPOTENCY_CONFLICT (409).
    const created = await runs.create(appOf(request), parsed.data, key);
    if (created.replayed) reply.header('idempotent-replayed', 'true');
    return reply.code(202).send({ run_id: created.runId, status: created.status });
  });

  app.get('/v1/runs', async (request) => {
    const query = runListQuerySchema.safeParse(request.query);
    if (!query.success) return fail('INVALID_REQUEST', `query: ${describeZodIssues(query.error)}`);
    const { limit, cursor } = query.data;
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && after === undefined) {
      return fail('INVALID_REQUEST', 'query: cursor: use the next_cursor of the page before');
    }
    const list = await runs.list(appOf(request), { limit, ...(after ? { after } : {}) });
    const last = list.at(-1);
    return {
      runs: list.map((r) => ({
        run_id: r.runId,
        status: r.status,
        created_at: iso(r.createdAt),
        updated_at: iso(r.updatedAt),
      })),
      next_cursor: list.length === limit && last ? encodeCursor(last.runId) : null,
    };
  });

  app.get('/v1/runs/:id', async (request) => {
    const id = runIdOf(request.params);
    const record = await runs.get(appOf(request), id);
    return record ? view(record) : notFound(id);
  });

  app.delete('/v1/runs/:id', async (request) => {
    const id = runIdOf(request.params);
    const outcome = await runs.cancel(appOf(request), id);
    if (outcome.kind === 'missing') return notFound(id);
    if (outcome.kind === 'finished' && outcome.status !== 'cancelled') {
      return fail('RUN_FINISHED', `run ${id} has finished already (${outcome.status}): nothing to cancel`);
    }
    return { run_id: id, status: 'cancelled' };
  });

  app.get('/v1/runs/:id/events', async (request, reply) => {
    const id = runIdOf(request.params);
    const query = runEventsQuerySchema.safeParse(request.query);
    if (!query.success) return fail('INVALID_REQUEST', `query: ${describeZodIssues(query.error)}`);
    const header = request.headers['last-event-id'];
    const fromHeader = header === undefined ? undefined : eventIdSchema.safeParse(header);
    if (fromHeader && !fromHeader.success) {
      return fail('INVALID_REQUEST', `Last-Event-ID header: ${valueIssue(fromHeader.error)}`);
    }
    if (!(await runs.get(appOf(request), id))) return notFound(id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    streams.add(res);
    await streamEvents(
      runs,
      id,
      fromHeader?.data ?? query.data.last_event_id ?? '0',
      res,
      options.logger,
    ).finally(() => streams.delete(res));
  });
}

/** Writes the run's events after `after`, then the live ones, until its final event or the client leaves. */
async function streamEvents(
  runs: RunService,
  runId: string,
  after: string,
  res: ServerResponse,
  logger: Logger | undefined,
): Promise<void> {
  const blocking = runs.blockingConnection();
  let open = true;
  res.on('close', () => {
    open = false;
    blocking.disconnect();
  });
  let cursor = after;
  try {
    while (open && !res.writableEnded) {
      // Status first: a finished run has its final event in the log already, so an empty read after it means the end.
      const status = await runs.store.status(runId);
      let events = await runs.store.readEvents(runId, cursor);
      if (events.length === 0) {
        if (status !== 'running') break;
        events = await runs.store.waitForEvents(blocking, runId, cursor, SSE_KEEPALIVE_MS);
        if (events.length === 0) {
          res.write(': keep-alive\n\n');
          continue;
        }
      }
      let final = false;
      for (const event of events) {
        res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${event.data}\n\n`);
        cursor = event.id;
        if (FINAL_EVENTS.has(event.type)) {
          final = true;
          break;
        }
      }
      if (final) break;
    }
  } catch (err) {
    if (open) logger?.warn({ err: (err as Error).message, run: runId }, 'run event stream failed');
  } finally {
    blocking.disconnect();
    res.end();
  }
}

function view(r: RunRecord): z.input<typeof runResponseSchema> {
  const end = r.finishedAt ?? Date.now();
  return {
    run_id: r.runId,
    status: r.status,
    created_at: iso(r.createdAt),
    updated_at: iso(r.updatedAt),
    ...(r.finishedAt ? { finished_at: iso(r.finishedAt) } : {}),
    elapsed_ms: Math.max(0, end - r.createdAt),
    ...(r.owner ? { coordinator: r.owner } : {}),
    takeovers: Math.max(0, r.epoch - 1),
    ...(r.checkpoint ? { saved_iterations: r.checkpoint.iteration } : {}),
    ...(r.result ? { result: r.result as z.input<typeof runResponseSchema>['result'] } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}

/** The problems of a single value (a header, a path parameter), without zod's path in front. */
function valueIssue(error: z.ZodError): string {
  return error.issues.map((issue) => issue.message).join('; ');
}

const iso = (ms: number) => new Date(ms).toISOString();

function encodeCursor(runId: string): string {
  return Buffer.from(runId).toString('base64url');
}

function decodeCursor(cursor: string): string | undefined {
  const runId = Buffer.from(cursor, 'base64url').toString();
  return /^run_[0-9a-f]{24}$/.test(runId) ? runId : undefined;
}
