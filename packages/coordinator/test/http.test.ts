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
import { waitForRun } from './runs-support.ts';

const TOKEN = 'test-token-0123456789abcdef';
let server: RedisServer;
let worker: ToolqWorker;
let dispatcher: Dispatcher;
let open: { app: FastifyInstance; url: string };
let guarded: { app: FastifyInstance; url: string };

async function serve(apiToken?: string) {
  const app = buildHttpServer({ dispatcher, bodyLimitBytes: 64 * 1024, ...(apiToken ? { apiToken } : {}) });
  const url = await listen(app, { host: '127.0.0.1', port: 0, ...(apiToken ? { apiToken } : {}) });
  return { app, url };
}

beforeAll(async () => {
  server = await startRedisServer();
  worker = await startWorker({ tools: diagnostics, redisUrl: server.url, logger: testLogger() });
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
  await dispatcher.start();
  open = await serve();
  guarded = await serve(TOKEN);
});

afterAll(async () => {
  await open?.app.close();
  await guarded?.app.close();
  await dispatcher?.close();
  await worker?.close();
  await server?.stop();
});

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });

describe('POST /v1/tool-batches', () => {
  it('answers results in request order with stats', async () => {
    const res = await post(
      open.url,
      JSON.stringify({
        tool_uses: [
          { id: 'toolu_1', name: 'diag_sleep', input: { ms: 100 } },
          { id: 'toolu_2', name: 'diag_fail', input: { message: 'nope' } },
          { id: 'toolu_3', name: 'mystery', input: {} },
        ],
        timeout_ms: 5_000,
      }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      tool_results: unknown[];
      stats: { calls: unknown[]; wall_ms: number };
    };
    expect(body.tool_results).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_1', content: '{"slept_ms":100}' },
      { type: 'tool_result', tool_use_id: 'toolu_2', content: 'Error: nope', is_error: true },
      { type: 'tool_result', tool_use_id: 'toolu_3', content: 'Unknown tool: mystery', is_error: true },
    ]);
    expect(body.stats.calls).toHaveLength(3);
    expect(body.stats.wall_ms).toBeGreaterThanOrEqual(100);
  });

  it.each([
    ['malformed JSON', '{"tool_uses": [', /not valid JSON: .*JSON/],
    ['an empty body', '', /not valid JSON: the body is empty/],
    ['a missing tool_uses', '{}', /tool_uses: give exactly one of tool_uses \(Messages API\), tool_calls/],
    [
      'a wrong type',
      '{"tool_uses": [{"id": 1, "name": "diag_echo", "input": {}}]}',
      /tool_uses\.0\.id: Invalid input: expected string/,
    ],
    ['a missing input', '{"tool_uses": [{"id": "a", "name": "diag_echo"}]}', /tool_uses\.0\.input: Required/],
    ['an unknown field', '{"tool_uses": [], "timeout": 5}', /Unrecognized key: "timeout"/],
    ['a field in camelCase', '{"tool_uses": [], "timeoutMs": 5}', /timeoutMs is now timeout_ms/],
    [
      'duplicate ids',
      '{"tool_uses": [{"id":"a","name":"x","input":{}},{"id":"a","name":"x","input":{}}]}',
      /ids must be unique/,
    ],
    [
      'a bad failure policy',
      '{"tool_uses": [], "failure_policy": "panic"}',
      /failure_policy: Invalid option/,
    ],
    ['a negative timeout', '{"tool_uses": [], "timeout_ms": -1}', /timeout_ms: Too small/],
    [
      'a __proto__ key',
      '{"tool_uses": [{"id":"a","name":"x","input":{"__proto__": {"polluted": true}}}]}',
      /"__proto__" key is not allowed/,
    ],
    ['a top-level array', '[1,2]', /expected object/],
  ])('answers 400 with a JSON error for %s', async (_what, body, message) => {
    const res = await post(open.url, body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { message: string } };
    expect(json.error.message).toMatch(message);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers 413 for a body over the limit', async () => {
    const big = JSON.stringify({
      tool_uses: [{ id: 'a', name: 'diag_echo', input: { value: 'x'.repeat(100_000) } }],
    });
    const res = await post(open.url, big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /larger than the limit/,
    );
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await post(open.url, 'hello', { 'content-type': 'text/plain' });
    expect(res.status).toBe(415);
  });
});

describe('auth', () => {
  const body = JSON.stringify({ tool_uses: [{ id: 'a', name: 'diag_echo', input: { value: 'hi' } }] });

  it('answers 401 without a token, or with a wrong one', async () => {
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: TOKEN },
      { authorization: 'Basic x' },
    ];
    for (const headers of cases) {
      const res = await post(guarded.url, body, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await fetch(`${guarded.url}/v1/tools`)).status).toBe(401);
  });

  it('serves with the right token; health stays open for probes', async () => {
    const res = await post(guarded.url, body, { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    expect((await fetch(`${guarded.url}/healthz`)).status).toBe(200);
  });

  it('refuses to listen beyond loopback without a token', async () => {
    const app = buildHttpServer({ dispatcher });
    await expect(listen(app, { host: '0.0.0.0', port: 0 })).rejects.toThrow(
      /refusing to listen on 0.0.0.0 without a token/,
    );
    await app.close();
  });
});

describe('catalog, health, metrics', () => {
  it('lists the tools of live workers with their JSON Schema', async () => {
    const res = await fetch(`${open.url}/v1/tools`);
    const { tools } = (await res.json()) as {
      tools: { name: string; input_schema: unknown; live_workers: number }[];
    };
    expect(tools.map((t) => t.name)).toEqual(['diag_crash', 'diag_echo', 'diag_fail', 'diag_sleep']);
    expect(tools.find((t) => t.name === 'diag_sleep')).toMatchObject({
      live_workers: 1,
      input_schema: { type: 'object', properties: { ms: { type: 'integer' } }, required: ['ms'] },
    });
  });

  it('serves the performance report of the recent calls', async () => {
    const report = (await (await fetch(`${open.url}/v1/report`)).json()) as {
      calls: number;
      tools: { tool: string; calls: number; ok: number; avg_ms: number; p95_ms: number; max_ms: number }[];
      success_rate: number;
    };
    expect(report.calls).toBeGreaterThan(0);
    const sleep = report.tools.find((t) => t.tool === 'diag_sleep');
    expect(sleep).toMatchObject({ calls: 1, ok: 1 });
    expect(sleep?.max_ms).toBeGreaterThanOrEqual(100);
    expect(report.tools.find((t) => t.tool === '_unknown')).toMatchObject({ ok: 0 });
    expect(report.tools.some((t) => t.tool === 'mystery')).toBe(false);
    expect(report.success_rate).toBeGreaterThan(0);
    expect(report.success_rate).toBeLessThan(1);
  });

  it('is ready when Redis answers and the reader runs', async () => {
    const res = await fetch(`${open.url}/readyz`);
    expect(res.status).toBe(200);
  });

  it('exposes the core metrics', async () => {
    const text = await (await fetch(`${open.url}/metrics`)).text();
    for (const name of [
      'toolq_tool_calls_total',
      'toolq_batch_overhead_seconds',
      'toolq_queue_jobs',
      'toolq_workers',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/toolq_tool_calls_total\{tool="diag_fail",pool="default",outcome="error"[^}]*\} 1/);
    expect(text).toMatch(/toolq_workers\{pool="default"[^}]*\} 1/);
    // Unknown names come from callers and must not create a series each.
    expect(text).toMatch(
      /toolq_tool_calls_total\{tool="_unknown",pool="none",outcome="unknown_tool"[^}]*\} 1/,
    );
    expect(text).not.toContain('tool="mystery"');
  });

  it('answers 404 as JSON for an unknown route', async () => {
    const res = await fetch(`${open.url}/v2/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});

describe('agent runs over HTTP', () => {
  it('starts a run (202), then answers its status and result', async () => {
    const model = await startScriptedModel(
      toolTurnsScript([{ calls: [{ name: 'diag_echo', input: { value: 'from the run' } }] }]),
    );
    const runs = new RunService({
      redisUrl: server.url,
      dispatcher,
      logger: testLogger(),
      model: { apiKey: 'test', baseURL: model.url, defaultModel: 'claude-sonnet-4-6' },
    });
    await runs.start();
    const app = buildHttpServer({ dispatcher, runs });
    const url = await listen(app, { host: '127.0.0.1', port: 0 });
    try {
      const started = await fetch(`${url}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Echo something.', tools: ['diag_echo'] }),
      });
      expect(started.status).toBe(202);
      const { run_id } = (await started.json()) as { run_id: string };
      const run = await waitForRun(url, run_id);
      expect(run.status).toBe('done');
      expect(run.result?.status).toBe('end_turn');
      expect(run.result?.calls.map((c) => c.name)).toEqual(['diag_echo']);
      expect(run.result?.text).toContain('from the run');
      expect((await fetch(`${url}/v1/runs/run_000000000000000000000000`)).status).toBe(404);
      const bad = await fetch(`${url}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a', messages: [{ role: 'user', content: 'b' }] }),
      });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
        /exactly one of prompt and messages/,
      );
    } finally {
      await app.close();
      await runs.close();
      await model.close();
    }
  });

  it('answers 503 when no model is configured', async () => {
    const runs = new RunService({ redisUrl: server.url, dispatcher, logger: testLogger() });
    await runs.start();
    const app = buildHttpServer({ dispatcher, runs });
    const url = await listen(app, { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${url}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'hi' }),
      });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
        /ANTHROPIC_API_KEY/,
      );
    } finally {
      await app.close();
      await runs.close();
    }
  });
});
