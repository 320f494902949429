/**
 * A run's records expire with its retention: the record, the event log, the index entry and the
 * BullMQ job are all gone from Redis, and every route answers as if the run had never been.
 */

import { type ScriptedModel, startScriptedModel } from '@toolq/scripted-model';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { buildHttpServer, listen } from '../src/http/server.ts';
import { Dispatcher } from '../src/index.ts';
import { RunService } from '../src/runs/run-service.ts';
import { api, readSse, runsScript, waitForRun } from './runs-support.ts';

const RETENTION_MS = 1_500;
let redis: RedisServer;
let client: Redis;
let model: ScriptedModel;
let dispatcher: Dispatcher;
let runs: RunService;
let http: ReturnType<typeof buildHttpServer>;
let url: string;

beforeAll(async () => {
  redis = await startRedisServer();
  client = new Redis(redis.url);
  model = await startScriptedModel(runsScript());
  dispatcher = new Dispatcher({ redisUrl: redis.url, prefix: 'ret', logger: testLogger() });
  await dispatcher.start();
  runs = new RunService({
    redisUrl: redis.url,
    prefix: 'ret',
    dispatcher,
    logger: testLogger(),
    retentionMs: RETENTION_MS,
    model: { apiKey: 'test-key', baseURL: model.url },
  });
  await runs.start();
  http = buildHttpServer({ dispatcher, runs });
  url = await listen(http, { host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await http?.close();
  await runs?.close();
  await dispatcher?.close();
  await model?.close();
  client?.disconnect();
  await redis?.stop();
});

async function keysOf(runId: string): Promise<string[]> {
  const all = await client.keys('ret:*');
  const found: string[] = [];
  for (const key of all) {
    if (key.includes(runId)) found.push(key);
    else if ((await client.type(key)) === 'zset' && (await client.zscore(key, runId)) !== null)
      found.push(key);
  }
  return found;
}

describe('run retention', () => {
  it("removes a run's records once its retention has passed", async () => {
    const res = await api(url, '/v1/runs', { method: 'POST', body: { prompt: 'plain:expire', tools: [] } });
    expect(res.status).toBe(202);
    const { run_id } = (await res.json()) as { run_id: string };
    const done = await waitForRun(url, run_id);
    expect(done.status).toBe('done');
    expect((await readSse(url, `/v1/runs/${run_id}/events`)).events.at(-1)?.event).toBe('done');
    const kept = await keysOf(run_id);
    expect(kept).toEqual(
      expect.arrayContaining([`ret:{r.${run_id}}:run`, `ret:{r.${run_id}}:events`, 'ret:runs:index:default']),
    );
    expect(await client.pttl(`ret:{r.${run_id}}:run`)).toBeLessThanOrEqual(RETENTION_MS);

    await new Promise((resolve) => setTimeout(resolve, RETENTION_MS + 500));
    // The run's own keys are gone at its retention; the app's index (shared by its runs) may keep
    // the entry a few seconds more (a new run's index lives until its owner first touches it), and
    // the list skips it meanwhile.
    expect((await keysOf(run_id)).filter((key) => key !== 'ret:runs:index:default')).toEqual([]);
    expect((await api(url, `/v1/runs/${run_id}`)).status).toBe(404);
    expect((await api(url, `/v1/runs/${run_id}/events`)).status).toBe(404);
    expect((await api(url, `/v1/runs/${run_id}`, { method: 'DELETE' })).status).toBe(404);
    expect(await (await api(url, '/v1/runs')).json()).toEqual({ runs: [], next_cursor: null });
    await waitFor('the index to expire too', async () => (await keysOf(run_id)).length === 0, 15_000);
  });
});
