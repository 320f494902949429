/**
 * One wire: every field of every request, response, query and run event of the HTTP API is
 * snake_case. Walks docs/openapi.json and the real answers of a coordinator (batches, the catalog,
 * the report, runs, their SSE events, probes, errors) and fails on any key with a capital letter.
 * The caller's own data is not the API's to name and is skipped: a tool's `input` and
 * `input_schema` (JSON Schema has `additionalProperties`), a run's `messages` (the Messages API's
 * objects) and `context`. A field sent in camelCase is a 400 that names the field to use.
 */
import { readFileSync } from 'node:fs';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { buildHttpServer, listen } from '../src/http/server.ts';
import { Dispatcher } from '../src/index.ts';
import { RunService } from '../src/runs/run-service.ts';
import { api, promptOf, readSse, waitForRun } from './runs-support.ts';

const OPENAPI = new URL('../../../docs/openapi.json', import.meta.url);
const SNAKE = /^[a-z0-9]+(_[a-z0-9]+)*$/;
/** Values that are the caller's or the model's own objects, passed through as they are. */
const OPAQUE = new Set(['input', 'input_schema', 'messages', 'context']);

/** `path: key` for every key of `value` (deeply) that is not snake_case, opaque values skipped. */
function camelKeys(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => camelKeys(v, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, v]) => [
    ...(SNAKE.test(key) ? [] : [`${path}: ${key}`]),
    ...(OPAQUE.has(key) ? [] : camelKeys(v, `${path}.${key}`)),
  ]);
}

/**
 * The field names an OpenAPI document declares: the keys of every `properties`, the entries of
 * every `required`, and the names of query and path parameters (headers are HTTP's own names).
 */
function declaredFields(node: unknown, path = '#'): { name: string; at: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => declaredFields(v, `${path}/${i}`));
  if (typeof node !== 'object' || node === null) return [];
  const out: { name: string; at: string }[] = [];
  const o = node as Record<string, unknown>;
  if (o.properties && typeof o.properties === 'object') {
    for (const name of Object.keys(o.properties)) out.push({ name, at: `${path}/properties` });
  }
  if (Array.isArray(o.required))
    for (const name of o.required) out.push({ name: String(name), at: `${path}/required` });
  if ((o.in === 'query' || o.in === 'path') && typeof o.name === 'string')
    out.push({ name: o.name, at: path });
  for (const [key, v] of Object.entries(o)) out.push(...declaredFields(v, `${path}/${key}`));
  return out;
}

describe('docs/openapi.json', () => {
  it('declares every field of every body and every query and path parameter in snake_case', () => {
    const doc = JSON.parse(readFileSync(OPENAPI, 'utf8')) as unknown;
    const fields = declaredFields(doc);
    // The walk found the API's fields (a broken walk would pass vacuously).
    expect(fields.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        'tool_use_id',
        'queue_wait_ms',
        'live_workers',
        'success_rate',
        'last_event_id',
      ]),
    );
    expect(fields.filter((f) => !SNAKE.test(f.name)).map((f) => `${f.at}: ${f.name}`)).toEqual([]);
  });

  it('the walk catches a camelCase key', () => {
    expect(declaredFields({ properties: { toolUseId: {} } }).map((f) => f.name)).toEqual(['toolUseId']);
    expect(camelKeys({ stats: { calls: [{ queueWaitMs: 1, input: { myKey: 1 } }] } })).toEqual([
      '$.stats.calls[0]: queueWaitMs',
    ]);
  });
});

describe('the answers of a running coordinator', () => {
  let redis: RedisServer;
  let worker: ToolqWorker;
  let dispatcher: Dispatcher;
  let runs: RunService;
  let model: Awaited<ReturnType<typeof startScriptedModel>>;
  let app: FastifyInstance;
  let url: string;
  let guarded: { app: FastifyInstance; url: string };

  beforeAll(async () => {
    redis = await startRedisServer();
    worker = await startWorker({ tools: diagnostics, redisUrl: redis.url, logger: testLogger() });
    dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
    await dispatcher.start();
    const quick = toolTurnsScript([
      {
        calls: [
          { name: 'diag_echo', input: { value: 'one', someKey: 'the model names its fields as it likes' } },
          { name: 'diag_fail', input: { message: 'no' } },
        ],
      },
    ]);
    const slow = toolTurnsScript([{ calls: [{ name: 'diag_sleep', input: { ms: 60_000 } }] }]);
    model = await startScriptedModel((ctx) => (promptOf(ctx.body) === 'slow' ? slow(ctx) : quick(ctx)));
    runs = new RunService({
      redisUrl: redis.url,
      dispatcher,
      logger: testLogger(),
      model: { apiKey: 'test', baseURL: model.url, defaultModel: 'claude-sonnet-4-6' },
    });
    await runs.start();
    app = buildHttpServer({ dispatcher, runs });
    url = await listen(app, { host: '127.0.0.1', port: 0 });
    const token = 'wire-case-token-0123456789';
    const guardedApp = buildHttpServer({ dispatcher, apiToken: token });
    guarded = {
      app: guardedApp,
      url: await listen(guardedApp, { host: '127.0.0.1', port: 0, apiToken: token }),
    };
  });

  afterAll(async () => {
    await app?.close();
    await guarded?.app.close();
    await runs?.close();
    await model?.close();
    await dispatcher?.close();
    await worker?.close();
    await redis?.stop();
  });

  it('every field of every answer and every run event is snake_case', async () => {
    const seen: { what: string; body: unknown }[] = [];
    const json = async (what: string, res: Response, status: number) => {
      expect(res.status, what).toBe(status);
      const body = (await res.json()) as unknown;
      seen.push({ what, body });
      return body;
    };

    const batch = {
      tool_uses: [
        { type: 'tool_use', id: 'toolu_ok', name: 'diag_sleep', input: { ms: 5 } },
        { type: 'tool_use', id: 'toolu_err', name: 'diag_fail', input: { message: 'no' } },
        { type: 'tool_use', id: 'toolu_unknown', name: 'mystery', input: {} },
      ],
      timeout_ms: 10_000,
      batch_id: 'wire-case-1',
      context: { tenantId: 'a caller context is the caller’s to name' },
    };
    const answered = (await json(
      'POST /v1/tool-batches',
      await api(url, '/v1/tool-batches', { method: 'POST', body: batch }),
      200,
    )) as {
      stats: { calls: Record<string, unknown>[] };
    };
    // The fields this issue renamed are there, under their new names.
    expect(answered.stats.calls[0]).toMatchObject({
      tool_use_id: 'toolu_ok',
      queue_wait_ms: expect.any(Number),
      run_ms: expect.any(Number),
      latency_ms: expect.any(Number),
    });
    await json('GET /v1/tool-batches/{id}', await api(url, '/v1/tool-batches/wire-case-1'), 200);
    const openAICall = {
      id: 'call_1',
      type: 'function',
      function: { name: 'diag_echo', arguments: '{"value":1}' },
    };
    await json(
      'POST /v1/tool-batches (tool_calls)',
      await api(url, '/v1/tool-batches', { method: 'POST', body: { tool_calls: [openAICall] } }),
      200,
    );
    const functionCall = {
      type: 'function_call',
      call_id: 'call_2',
      name: 'diag_echo',
      arguments: '{"value":2}',
    };
    await json(
      'POST /v1/tool-batches (function_calls)',
      await api(url, '/v1/tool-batches', { method: 'POST', body: { function_calls: [functionCall] } }),
      200,
    );
    await json('409 batch exists', await api(url, '/v1/tool-batches', { method: 'POST', body: batch }), 409);
    const tools = (await json('GET /v1/tools', await api(url, '/v1/tools'), 200)) as {
      tools: Record<string, unknown>[];
    };
    expect(tools.tools.find((t) => t.name === 'diag_sleep')).toMatchObject({
      timeout_ms: expect.any(Number),
      live_workers: 1,
      waits_for_workers: false,
    });
    const report = (await json('GET /v1/report', await api(url, '/v1/report?window=15m'), 200)) as Record<
      string,
      unknown
    >;
    expect(report.success_rate).toEqual(expect.any(Number));
    await json('400 bad window', await api(url, '/v1/report?window=forever'), 400);
    await json('GET /healthz', await api(url, '/healthz'), 200);
    await json('GET /readyz', await api(url, '/readyz'), 200);
    await json('404', await api(url, '/v1/tool-batches/never-sent'), 404);
    await json(
      '400 body',
      await api(url, '/v1/tool-batches', { method: 'POST', body: { tool_uses: 'no' } }),
      400,
    );
    await json('401', await api(guarded.url, '/v1/tools'), 401);

    // A run that finishes: its record, the list, and its events.
    const created = (await json(
      'POST /v1/runs',
      await api(url, '/v1/runs', {
        method: 'POST',
        body: { prompt: 'go', max_iterations: 3, tools: ['diag_echo', 'diag_fail'] },
      }),
      202,
    )) as {
      run_id: string;
    };
    const done = await waitForRun(url, created.run_id);
    expect(done.status).toBe('done');
    const run = (await json('GET /v1/runs/{id}', await api(url, `/v1/runs/${created.run_id}`), 200)) as {
      result: {
        calls: Record<string, unknown>[];
        usage: Record<string, unknown>;
        stats: Record<string, unknown>;
      };
    };
    expect(run.result.calls[0]).toMatchObject({
      tool_use_id: expect.any(String),
      is_error: false,
      latency_ms: expect.any(Number),
    });
    expect(run.result.calls[0]?.input).toMatchObject({ someKey: expect.any(String) });
    expect(run.result.usage).toMatchObject({
      executor: { input_tokens: expect.any(Number) },
      by_model: expect.any(Array),
    });
    expect(run.result.stats).toMatchObject({ wall_ms: expect.any(Number), sum_tool_ms: expect.any(Number) });
    await json('GET /v1/runs', await api(url, '/v1/runs?limit=5'), 200);
    const events = await readSse(url, `/v1/runs/${created.run_id}/events`);
    expect(events.events.map((e) => e.event)).toEqual(
      expect.arrayContaining([
        'run_started',
        'turn_started',
        'tool_started',
        'tool_finished',
        'turn_finished',
        'done',
      ]),
    );
    for (const e of events.events) seen.push({ what: `event ${e.event}`, body: e.data });

    // A run cancelled while its call runs: DELETE's answer and the cancelled event.
    const slow = (await (
      await api(url, '/v1/runs', { method: 'POST', body: { prompt: 'slow', tools: ['diag_sleep'] } })
    ).json()) as {
      run_id: string;
    };
    await readSse(url, `/v1/runs/${slow.run_id}/events`, { stop: (e) => e.event === 'tool_started' });
    await json('DELETE /v1/runs/{id}', await api(url, `/v1/runs/${slow.run_id}`, { method: 'DELETE' }), 200);
    const cancelled = await readSse(url, `/v1/runs/${slow.run_id}/events`);
    expect(cancelled.events.at(-1)?.event).toBe('cancelled');
    for (const e of cancelled.events) seen.push({ what: `event ${e.event}`, body: e.data });

    const wrong = seen.flatMap(({ what, body }) => camelKeys(body).map((k) => `${what} ${k}`));
    expect(wrong).toEqual([]);
  });

  it('refuses a field sent in camelCase with a 400 that names the snake_case field', async () => {
    const cases: { path: string; method?: string; body?: unknown; says: string }[] = [
      {
        path: '/v1/tool-batches',
        body: { tool_uses: [], timeoutMs: 1_000 },
        says: 'invalid body: timeoutMs is now timeout_ms',
      },
      {
        path: '/v1/tool-batches',
        body: { toolUses: [] },
        says: 'invalid body: toolUses is now tool_uses',
      },
      {
        path: '/v1/tool-batches',
        body: { tool_uses: [], failurePolicy: 'abort', maxRetries: 1 },
        says: 'invalid body: failurePolicy is now failure_policy',
      },
      {
        path: '/v1/runs',
        body: { prompt: 'a', maxIterations: 2 },
        says: 'invalid body: maxIterations is now max_iterations',
      },
      {
        path: '/v1/runs/run_000000000000000000000000/events?lastEventId=1-0',
        method: 'GET',
        says: 'query: lastEventId is now last_event_id',
      },
    ];
    for (const c of cases) {
      const res = await api(url, c.path, {
        method: c.method ?? 'POST',
        ...(c.body === undefined ? {} : { body: c.body }),
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status, c.path).toBe(400);
      expect(body.error.code).toBe('INVALID_REQUEST');
      expect(body.error.message).toContain(c.says);
      expect(body.error.message).toContain('snake_case');
    }
  });
});
