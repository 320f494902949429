/**
 * Agent runs over HTTP, from any coordinator of the fleet: POST /v1/runs starts a durable run
 * (runs/run-service.ts) and answers 202 with its id at once; GET /v1/runs lists the caller's runs;
 * GET /v1/runs/:id tells how one is going; GET /v1/runs/:id/events streams its event log (SSE);
 * DELETE /v1/runs/:id cancels it. A run belongs to the app whose token created it: to any other
 * app it does not exist (404).
 */
import type { ServerResponse } from 'node:http';
import { ToolqError, type ToolqErrorCode } from '@toolq/shared';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { EventSink } from '../runs/run-event-hub.ts';
import { RUN_ID_PATTERN } from '../runs/run-keys.ts';
import type { RunService } from '../runs/run-service.ts';
import type { RunRecord } from '../runs/run-store.ts';
import { appOf } from './auth.ts';
import { BAD_REQUEST, error } from './responses.ts';
import { type ApiRoute, named, type RouteContext, route } from './route.ts';
import {
  eventIdSchema,
  idempotencyKeySchema,
  runCancelResponseSchema,
  runCreatedResponseSchema,
  runEventSchema,
  runEventsQuerySchema,
  runIdSchema,
  runListQuerySchema,
  runListResponseSchema,
  runRequestSchema,
  runResponseSchema,
} from './run-schemas.ts';

/** Thrown to the server's error handler, which answers with the code's status (errors.ts). */
const fail = (code: ToolqErrorCode, message: string): never => {
  throw new ToolqError(code, message);
};

const NOT_SET_UP = 'agent runs are not set up on this coordinator (no model is configured)';

/** Without a run service every /v1/runs* request answers 503, before any route or 404. */
export function registerRunHooks(app: FastifyInstance, ctx: RouteContext): void {
  // SSE answers are hijacked: close() would otherwise wait for their clients to hang up.
  app.addHook('preClose', async () => {
    for (const res of ctx.streams) res.end();
  });
  app.addHook('onRequest', async (request) => {
    if (!ctx.runs && request.url.startsWith('/v1/runs')) return fail('NO_MODEL', NOT_SET_UP);
  });
}

/** The run service; the hook above answers before a handler runs without one. */
const runsOf = (ctx: RouteContext): RunService => ctx.runs ?? fail('NO_MODEL', NOT_SET_UP);

const notFound = (id: string) => fail('NOT_FOUND', `no run ${id} (unknown, expired, or another app's)`);
const NOT_FOUND = error("No such run (unknown, expired, or another app's).");

const runId = (description: string) => ({ id: { description, schema: runIdSchema, label: 'run id' } });

export const RUN_ROUTES: ApiRoute[] = [
  route({
    method: 'post',
    path: '/v1/runs',
    operationId: 'createRun',
    tag: 'runs',
    summary: "Start a durable agent run on the fleet's tools",
    description:
      'Answers 202 with the run id at once; the run goes on on any coordinator. A repeated ' +
      '`Idempotency-Key` with the same body answers the same run (header `idempotent-replayed: true`).',
    headers: {
      'idempotency-key': {
        description:
          'Your key for this request (printable ASCII, e.g. a UUID): a retry creates no second run.',
        schema: idempotencyKeySchema,
        label: 'Idempotency-Key header',
      },
    },
    body: named('RunRequest', runRequestSchema),
    responses: {
      202: { description: 'Started.', body: named('RunCreated', runCreatedResponseSchema) },
      400: BAD_REQUEST,
      409: error('The Idempotency-Key was used with another request.'),
      503: error('No model is configured (ANTHROPIC_API_KEY, with ANTHROPIC_BASE_URL for a gateway).'),
    },
    ready: (ctx) => {
      if (!runsOf(ctx).hasModel) {
        fail(
          'NO_MODEL',
          'no model is configured: set ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL alone, a gateway without a key, is not enough)',
        );
      }
    },
    handler: async ({ body, headers, request, reply, ctx }) => {
      // A reused key with another request throws IDEMPOTENCY_CONFLICT (409).
      const created = await runsOf(ctx).create(appOf(request), body, headers['idempotency-key']);
      if (created.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(202).send({ run_id: created.runId, status: created.status });
    },
  }),
  route({
    method: 'get',
    path: '/v1/runs',
    operationId: 'listRuns',
    tag: 'runs',
    summary: "The caller's runs, newest first",
    query: {
      schema: runListQuerySchema,
      fields: {
        limit: 'Runs per page (1-100, default 20).',
        cursor: 'The `next_cursor` of the page before.',
      },
    },
    responses: {
      200: { description: 'A page of runs.', body: named('RunList', runListResponseSchema) },
      400: BAD_REQUEST,
    },
    handler: async ({ query, request, ctx }) => {
      const { limit, cursor } = query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if (cursor !== undefined && after === undefined) {
        return fail('INVALID_REQUEST', 'query: cursor: use the next_cursor of the page before');
      }
      const list = await runsOf(ctx).list(appOf(request), { limit, ...(after ? { after } : {}) });
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
    },
  }),
  route({
    method: 'get',
    path: '/v1/runs/:id',
    operationId: 'getRun',
    tag: 'runs',
    summary: 'How a run is going, and its result once it has one',
    params: runId('The `run_id` POST /v1/runs answered.'),
    responses: {
      200: { description: 'The run.', body: named('Run', runResponseSchema) },
      400: BAD_REQUEST,
      404: NOT_FOUND,
    },
    handler: async ({ params, request, ctx }) => {
      const record = await runsOf(ctx).get(appOf(request), params.id);
      return record ? view(record) : notFound(params.id);
    },
  }),
  route({
    method: 'delete',
    path: '/v1/runs/:id',
    operationId: 'cancelRun',
    tag: 'runs',
    summary: 'Cancel a run',
    params: runId('The run to cancel.'),
    responses: {
      200: { description: 'Cancelled.', body: named('RunCancelled', runCancelResponseSchema) },
      400: BAD_REQUEST,
      404: NOT_FOUND,
      409: error('The run has finished already.'),
    },
    handler: async ({ params: { id }, request, ctx }) => {
      const outcome = await runsOf(ctx).cancel(appOf(request), id);
      if (outcome.kind === 'missing') return notFound(id);
      if (outcome.kind === 'finished' && outcome.status !== 'cancelled') {
        return fail('RUN_FINISHED', `run ${id} has finished already (${outcome.status}): nothing to cancel`);
      }
      return { run_id: id, status: 'cancelled' };
    },
  }),
  route({
    method: 'get',
    path: '/v1/runs/:id/events',
    operationId: 'streamRunEvents',
    tag: 'runs',
    summary: "The run's event log, then its live events (Server-Sent Events)",
    description:
      'Each event: `id:` (send it back as `Last-Event-ID` to resume), `event:` its type, `data:` a RunEvent as JSON. ' +
      'The stream ends after `done`, `failed` or `cancelled`. An app may have TOOLQ_MAX_STREAMS_PER_APP ' +
      'streams open on one coordinator (default 100); past that it is answered 429 `TOO_MANY_STREAMS`.',
    params: runId('The run.'),
    query: { schema: runEventsQuerySchema, fields: { last_event_id: 'Resume after this event id.' } },
    headers: {
      'last-event-id': {
        description: 'Resume after this event id (wins over the query).',
        schema: eventIdSchema,
        label: 'Last-Event-ID header',
      },
    },
    responses: {
      200: {
        description: 'An SSE stream whose `data:` lines are RunEvent objects.',
        body: named('RunEvent', runEventSchema),
        contentType: 'text/event-stream',
      },
      400: BAD_REQUEST,
      404: NOT_FOUND,
      429: error(
        'This app has as many streams open on this coordinator as TOOLQ_MAX_STREAMS_PER_APP allows.',
      ),
    },
    handler: async ({ params: { id }, query, headers, request, reply, ctx }) => {
      const runs = runsOf(ctx);
      const app = appOf(request);
      // Two fields of the record: a run's input can be megabytes, and a stream needs none of it.
      if (!(await runs.events.statusFor(app, id))) return notFound(id);
      // Throws TOO_MANY_STREAMS (429) before anything is written.
      const release = runs.events.admit(app);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      // The 200 now, not with the first event: a stream resumed at the end of the log may have none for a while.
      res.flushHeaders();
      ctx.streams.add(res);
      const after = headers['last-event-id'] ?? query.last_event_id ?? '0';
      const left = new AbortController();
      res.on('close', () => left.abort());
      // A client gone before the listener was there would otherwise be followed until the run ends.
      if (res.destroyed) left.abort();
      try {
        await runs.events.follow(id, after, sseSink(res), left.signal);
      } finally {
        release();
        ctx.streams.delete(res);
        res.end();
      }
    },
  }),
];

/** Events as SSE: `id:` to resume from, `event:` the type, `data:` the event's JSON. */
function sseSink(res: ServerResponse): EventSink {
  return {
    write: (events) => {
      if (res.writableEnded || res.destroyed) return;
      res.write(events.map((e) => `id: ${e.id}\nevent: ${e.type}\ndata: ${e.data}\n\n`).join(''));
    },
    keepAlive: () => {
      if (!res.writableEnded && !res.destroyed) res.write(': keep-alive\n\n');
    },
  };
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
    takeovers: Math.max(0, r.epoch - 1 - r.wakes),
    ...(r.parkedAt ? { parked_at: iso(r.parkedAt) } : {}),
    ...(r.checkpoint ? { saved_iterations: r.checkpoint.iteration } : {}),
    ...(r.result ? { result: r.result as z.input<typeof runResponseSchema>['result'] } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

function encodeCursor(runId: string): string {
  return Buffer.from(runId).toString('base64url');
}

function decodeCursor(cursor: string): string | undefined {
  const runId = Buffer.from(cursor, 'base64url').toString();
  return RUN_ID_PATTERN.test(runId) ? runId : undefined;
}
