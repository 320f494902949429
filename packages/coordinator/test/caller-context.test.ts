/**
 * A batch's caller context (HTTP `context`, DispatchOptions.context) reaches every tool as
 * `ctx.context`, with the token's app as `ctx.app`; it is never logged (both processes at debug)
 * and leaves Redis with the batch's jobs. A durable run's (`POST /v1/runs` `context`) reaches the
 * tools the model asks for the same way. Real coordinator and worker processes, the real SDK
 * against the scripted Messages API.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ToolqClient } from '@toolq/client';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { spawnWorkerProcess } from '../../../test-support/worker-process.ts';
import { api, waitForRun } from './runs-support.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/whoami-tools.ts', import.meta.url));
const TOKEN = 'alpha-token-0123456789abcdef';
const SECRET = 'ctx-secret-7f3a9c';

let server: RedisServer;
let redis: Redis;
let model: ScriptedModel;
let worker: ReturnType<typeof spawnWorkerProcess>;
let coordinator: ReturnType<typeof spawnCoordinatorProcess>;
let url: string;

const readyUrl = (output: string) =>
  output
    .split('\n')
    .map((line) => {
      try {
        return JSON.parse(line) as { event?: string; url?: string };
      } catch {
        return undefined;
      }
    })
    .find((line) => line?.event === 'ready')?.url;

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  // Every run asks for whoami once, then answers with what the tool returned.
  model = await startScriptedModel(
    toolTurnsScript({
      turns: [{ calls: [{ name: 'whoami', input: {} }] }],
      final: (results) => results.map((r) => r.content).join('\n'),
    }),
  );
  const env = { TOOLQ_LOG_LEVEL: 'debug' };
  worker = spawnWorkerProcess({ redisUrl: server.url, tools: TOOLS, env });
  coordinator = spawnCoordinatorProcess({
    ...env,
    REDIS_URL: server.url,
    TOOLQ_API_TOKENS: `alpha:${TOKEN}`,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
  });
  url = await waitFor('the coordinator', () => readyUrl(coordinator.output()));
  await waitFor('the worker', () => worker.output().includes('"event":"ready"'));
});

afterAll(async () => {
  await Promise.all(
    [worker?.child, coordinator?.child]
      .filter((c): c is ChildProcess => c !== undefined)
      .map((c) => stopChild(c)),
  );
  redis?.disconnect();
  await model?.close();
  await server?.stop();
});

const digest = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

function post(body: unknown) {
  return fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Every value stored in Redis, as text (hashes, strings, lists, sets, sorted sets, streams). */
async function everythingInRedis(): Promise<string> {
  const keys = await redis.keys('*');
  const values = await Promise.all(
    keys.map(async (key) => {
      const type = await redis.type(key);
      if (type === 'hash') return JSON.stringify(await redis.hgetall(key));
      if (type === 'string') return (await redis.getBuffer(key))?.toString('latin1') ?? '';
      if (type === 'list') return JSON.stringify(await redis.lrange(key, 0, -1));
      if (type === 'set') return JSON.stringify(await redis.smembers(key));
      if (type === 'zset') return JSON.stringify(await redis.zrange(key, '0', '-1'));
      if (type === 'stream') return JSON.stringify(await redis.xrange(key, '-', '+'));
      return '';
    }),
  );
  return `${keys.join('\n')}\n${values.join('\n')}`;
}

describe('caller context', () => {
  it('the tool sees the context and the app; nothing logs it, and it leaves Redis with the batch', async () => {
    const context = { user: 'u-42', tenant: 'acme', scopes: ['read'], token: SECRET };
    const res = await post({
      tool_uses: [
        { type: 'tool_use', id: 'toolu_1', name: 'whoami', input: {} },
        { type: 'tool_use', id: 'toolu_2', name: 'whoami', input: {} },
      ],
      context,
    });
    expect(res.status).toBe(200);
    const batch = (await res.json()) as { tool_results: { content: string }[] };
    for (const result of batch.tool_results)
      expect(JSON.parse(result.content)).toEqual({
        app: 'alpha',
        keys: Object.keys(context),
        sha256: digest(context),
      });

    // Gone with the jobs once they finished (the batch record never held it).
    const end = Date.now() + 5_000;
    let stored = await everythingInRedis();
    while (stored.includes(SECRET) && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stored = await everythingInRedis();
    }
    expect(stored).not.toContain(SECRET);
    expect(stored).toContain('toolu_1'); // the batch record is still there: it was not empty Redis
    const logs = `${coordinator.output()}\n${worker.output()}`;
    expect(logs).toContain('"name":"toolq-coordinator"'); // both processes' logs were read
    expect(logs).toContain('"name":"toolq-worker"');
    expect(logs).not.toContain(SECRET);
  });

  it('the HTTP client sends it as createToolBatch({ context })', async () => {
    const client = new ToolqClient({ baseUrl: url, token: TOKEN });
    const context = { user: 'u-7' };
    const batch = await client.createToolBatch([{ id: 'toolu_5', name: 'whoami', input: {} }], { context });
    expect(JSON.parse(String(batch.tool_results[0]?.content))).toEqual({
      app: 'alpha',
      keys: ['user'],
      sha256: digest(context),
    });
  });

  it('a batch without context gives the tool {} and the app', async () => {
    const res = await post({ tool_uses: [{ id: 'toolu_3', name: 'whoami', input: {} }] });
    const batch = (await res.json()) as { tool_results: { content: string }[] };
    expect(JSON.parse(batch.tool_results[0]?.content ?? '')).toEqual({
      app: 'alpha',
      keys: [],
      sha256: digest({}),
    });
  });

  it.each([
    [[1, 2], /context: Invalid input: expected record, received array/],
    [{ big: 'x'.repeat(9_000) }, /context: must be at most 8192 bytes as JSON/],
  ])('refuses context %#', async (context, message) => {
    const res = await post({ tool_uses: [{ id: 'toolu_4', name: 'whoami', input: {} }], context });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
  });
});

describe("a durable run's caller context", () => {
  it("every tool the model asks for sees the run's context and app; nothing logs it", async () => {
    const context = { user: 'u-9', tenant: 'acme', token: `${SECRET}-run` };
    const res = await api(url, '/v1/runs', {
      method: 'POST',
      token: TOKEN,
      body: { prompt: 'who?', tools: ['whoami'], context },
    });
    expect(res.status).toBe(202);
    const { run_id } = (await res.json()) as { run_id: string };
    const run = await waitForRun(url, run_id, TOKEN);
    expect(run.status).toBe('done');
    expect(run.result?.calls.map((c) => c.name)).toEqual(['whoami']);
    expect(JSON.parse(run.result?.text ?? '')).toEqual({
      app: 'alpha',
      keys: Object.keys(context),
      sha256: digest(context),
    });
    expect(`${coordinator.output()}\n${worker.output()}`).not.toContain(`${SECRET}-run`);
  });

  it('the HTTP client sends it as createRun({ context })', async () => {
    const client = new ToolqClient({ baseUrl: url, token: TOKEN });
    const context = { user: 'u-8' };
    const { run_id } = await client.createRun({ prompt: 'who? (client)', tools: ['whoami'], context });
    const run = await waitForRun(url, run_id, TOKEN);
    expect(JSON.parse(run.result?.text ?? '')).toEqual({
      app: 'alpha',
      keys: ['user'],
      sha256: digest(context),
    });
  });

  it.each([
    [[1, 2], /context: Invalid input: expected record, received array/],
    ['u-1', /context: Invalid input: expected record, received string/],
    [{ big: 'x'.repeat(9_000) }, /context: must be at most 8192 bytes as JSON/],
  ])('refuses context %#', async (context, message) => {
    const res = await api(url, '/v1/runs', {
      method: 'POST',
      token: TOKEN,
      body: { prompt: 'no', tools: [], context },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
  });
});
