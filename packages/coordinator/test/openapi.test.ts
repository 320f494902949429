/**
 * The OpenAPI document against a running coordinator: it is what the server serves, the server
 * serves every route of the table it is generated from, and real answers are what its response
 * schemas say. What needs no server (the checked-in copy is up to date, an independent validator
 * accepts it, the table is well formed) is in unit/openapi-document.test.ts.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ZodType } from 'zod';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { buildOpenApiDocument } from '../src/http/openapi.ts';
import type { ApiRoute } from '../src/http/route.ts';
import { API_ROUTES } from '../src/http/routes.ts';
import { buildHttpServer, listen } from '../src/http/server.ts';
import { Dispatcher } from '../src/index.ts';
import { RunService } from '../src/runs/run-service.ts';

const DOCS_FILE = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));

let redis: RedisServer;
let worker: ToolqWorker;
let dispatcher: Dispatcher;
let model: Awaited<ReturnType<typeof startScriptedModel>>;
let runs: RunService;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorker({ tools: diagnostics, redisUrl: redis.url, logger: testLogger() });
  dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
  await dispatcher.start();
  model = await startScriptedModel(
    toolTurnsScript([{ calls: [{ name: 'diag_echo', input: { value: 'from the run' } }] }]),
  );
  runs = new RunService({
    redisUrl: redis.url,
    dispatcher,
    logger: testLogger(),
    model: { apiKey: 'test', baseURL: model.url, defaultModel: 'claude-sonnet-4-6' },
  });
  await runs.start();
  app = buildHttpServer({ dispatcher, runs });
  url = await listen(app, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await runs?.close();
  await model?.close();
  await dispatcher?.close();
  await worker?.close();
  await redis?.stop();
});

/** A body is what the schema says: it parses, and parsing drops nothing (no undocumented field). */
function expectMatches(schema: ZodType, body: unknown): void {
  const parsed = schema.safeParse(body);
  expect(parsed.error?.issues ?? []).toEqual([]);
  expect(parsed.data).toEqual(body);
}

function responseSchema(method: ApiRoute['method'], path: string, status: number): ZodType {
  const route = API_ROUTES.find((r) => r.method === method && r.path === path);
  const schema = route?.responses[status]?.body?.schema;
  if (!schema) throw new Error(`the route table has no ${status} body for ${method} ${path}`);
  return schema;
}

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text,
  };
}

describe('the OpenAPI document', () => {
  it('is served at GET /openapi.json', async () => {
    const res = await call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(JSON.parse(readFileSync(DOCS_FILE, 'utf8')));
  });

  it('is the table the server serves: every route of it answers (HEAD too, for a GET)', () => {
    for (const route of API_ROUTES) {
      const methods = route.method === 'get' ? ['GET', 'HEAD'] : [route.method.toUpperCase()];
      for (const method of methods) {
        expect(app.hasRoute({ method, url: route.path }), `${method} ${route.path}`).toBe(true);
      }
    }
  });

  it('describes requests with the schemas that validate them: a documented constraint is enforced', async () => {
    const document = buildOpenApiDocument(API_ROUTES) as {
      components: { schemas: Record<string, { properties: Record<string, { maximum?: number }> }> };
    };
    const maximum = document.components.schemas.ToolBatchRequest?.properties.timeout_ms?.maximum;
    expect(maximum).toBe(3_600_000);
    const tool_uses = [{ type: 'tool_use', id: 'toolu_1', name: 'diag_echo', input: { value: 1 } }];
    const over = await call('POST', '/v1/tool-batches', { tool_uses, timeout_ms: (maximum ?? 0) + 1 });
    expect(over.status).toBe(400);
    expectMatches(responseSchema('post', '/v1/tool-batches', 400), over.body);
    expect((over.body as { error: { message: string } }).error.message).toMatch(/timeout_ms/);
    const at = await call('POST', '/v1/tool-batches', { tool_uses, timeout_ms: maximum });
    expect(at.status).toBe(200);
  });
});

describe('real answers match the response schemas', () => {
  it('POST /v1/tool-batches (200, 400, 409) and GET /v1/tool-batches/:id (200, 404)', async () => {
    const batch = {
      tool_uses: [
        { type: 'tool_use', id: 'toolu_1', name: 'diag_echo', input: { value: { a: 1 } } },
        {
          type: 'tool_use',
          id: 'toolu_2',
          name: 'diag_fail',
          input: { message: 'no' },
          caller: { type: 'direct' },
        },
        { id: 'toolu_3', name: 'mystery', input: {} },
      ],
      batch_id: 'openapi-test-1',
      timeout_ms: 5_000,
    };
    const ok = await call('POST', '/v1/tool-batches', batch);
    expect(ok.status).toBe(200);
    expectMatches(responseSchema('post', '/v1/tool-batches', 200), ok.body);

    const again = await call('POST', '/v1/tool-batches', batch);
    expect(again.status).toBe(409);
    expectMatches(responseSchema('post', '/v1/tool-batches', 409), again.body);

    const collected = await call('GET', '/v1/tool-batches/openapi-test-1');
    expect(collected.status).toBe(200);
    expectMatches(responseSchema('get', '/v1/tool-batches/:id', 200), collected.body);

    const missing = await call('GET', '/v1/tool-batches/never-sent');
    expect(missing.status).toBe(404);
    expectMatches(responseSchema('get', '/v1/tool-batches/:id', 404), missing.body);

    const bad = await call('POST', '/v1/tool-batches', { tool_uses: [], extra: 1 });
    expect(bad.status).toBe(400);
    expectMatches(responseSchema('post', '/v1/tool-batches', 400), bad.body);
  });

  it('GET /v1/tools, /v1/report, /healthz, /readyz', async () => {
    for (const path of ['/v1/tools', '/v1/report', '/healthz', '/readyz']) {
      const res = await call('GET', path);
      expect(res.status, path).toBe(200);
      expectMatches(responseSchema('get', path, 200), res.body);
    }
    const tools = (await call('GET', '/v1/tools')).body as { tools: { name: string }[] };
    expect(tools.tools.map((t) => t.name)).toContain('diag_echo');
  });

  it('POST /v1/runs (202) and GET /v1/runs/:id (200 running or done, 404)', async () => {
    const started = await call('POST', '/v1/runs', { prompt: 'Echo something.', tools: ['diag_echo'] });
    expect(started.status).toBe(202);
    expectMatches(responseSchema('post', '/v1/runs', 202), started.body);
    const { run_id } = started.body as { run_id: string };
    let run: { status: string } = { status: 'running' };
    for (let i = 0; i < 200 && run.status === 'running'; i++) {
      const res = await call('GET', `/v1/runs/${run_id}`);
      expect(res.status).toBe(200);
      expectMatches(responseSchema('get', '/v1/runs/:id', 200), res.body);
      run = res.body as typeof run;
      if (run.status === 'running') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(run.status).toBe('done');
    const missing = await call('GET', '/v1/runs/run_000000000000000000000000');
    expect(missing.status).toBe(404);
    expectMatches(responseSchema('get', '/v1/runs/:id', 404), missing.body);
  });
});
