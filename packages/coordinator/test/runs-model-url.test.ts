/**
 * A model gateway's credentials in ANTHROPIC_BASE_URL (user, password, a key in the query) never
 * leave the coordinator: a run that cannot reach the gateway names its origin only, in the run's
 * error, its `failed` event, the run record in Redis and the coordinator's log. A real coordinator
 * process on a real Redis; the gateway is a port nobody listens on.
 */

import { inspect } from 'node:util';
import { closeRedis, createRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { freePort } from '../../../test-support/free-port.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { withoutUrlSecrets } from '../src/agent/model-url.ts';
import { runAgent } from '../src/agent/run-agent.ts';
import { Dispatcher } from '../src/dispatcher.ts';
import { api, readSse, waitForRun } from './runs-support.ts';

const TOKEN = 'model-url-token-0123456789ab';
const SECRETS = ['gw-user-5e1d', 'gw-password-77c0', 'gw-key-a91f03'];

let redis: RedisServer;
let coordinator: ReturnType<typeof spawnCoordinatorProcess>;
let url: string;
let origin: string;

beforeAll(async () => {
  redis = await startRedisServer();
  origin = `http://127.0.0.1:${await freePort()}`;
  const [user, password, key] = SECRETS;
  coordinator = spawnCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: `http://${user}:${password}@${origin.slice('http://'.length)}/v1?gw_key=${key}`,
    TOOLQ_API_TOKEN: TOKEN,
  });
  await waitFor(
    'the coordinator to be ready',
    () => coordinator.output().includes('"event":"ready"'),
    30_000,
  );
  url = /"event":"listening","url":"([^"]+)"/.exec(coordinator.output())?.[1] ?? '';
});

afterAll(async () => {
  coordinator?.child.kill('SIGKILL');
  await coordinator?.exited;
  await redis?.stop();
});

it('a run that cannot reach the gateway shows its origin only: error, failed event, Redis, log', async () => {
  const res = await api(url, '/v1/runs', {
    method: 'POST',
    token: TOKEN,
    body: { prompt: 'hello', tools: [] },
  });
  expect(res.status).toBe(202);
  const { run_id } = (await res.json()) as { run_id: string };
  const run = await waitForRun(url, run_id, TOKEN);
  expect(run.status).toBe('failed');
  expect(run.error).toEqual({
    code: 'MODEL_ERROR',
    message: expect.stringContaining(`cannot reach the Messages API at ${origin}:`),
  });
  const { events } = await readSse(url, `/v1/runs/${run_id}/events`, { token: TOKEN });
  const failed = events.find((e) => e.event === 'failed');
  expect(failed?.data).toMatchObject({ error: run.error });

  const client = createRedis(redis.url);
  const stored: string[] = [];
  try {
    for (const key of await client.keys('*')) {
      const type = await client.type(key);
      if (type === 'hash') stored.push(JSON.stringify(await client.hgetall(key)));
      if (type === 'string') stored.push((await client.get(key)) ?? '');
      if (type === 'stream') stored.push(JSON.stringify(await client.xrange(key, '-', '+')));
      if (type === 'zset') stored.push(JSON.stringify(await client.zrange(key, '0', '-1')));
    }
  } finally {
    await closeRedis(client);
  }
  expect(stored.join('\n')).toContain('cannot reach the Messages API');
  expect(coordinator.output()).toContain('run failed');
  for (const place of [
    JSON.stringify(run),
    JSON.stringify(events),
    stored.join('\n'),
    coordinator.output(),
  ]) {
    for (const secret of SECRETS) expect(place).not.toContain(secret);
  }
});

it("cuts the gateway's URLs and any URL with credentials to their origin, masks its secrets elsewhere, keeps other links", () => {
  const base = 'https://u-5e1d:p-77c0@gw.example:8443/v1?gw_key=k-a91f03';
  expect(
    withoutUrlSecrets(
      'POST https://gw.example:8443/v1/messages?gw_key=k-a91f03: 401 (key k-a91f03 for u-5e1d); ' +
        'see https://docs.anthropic.com/en/api/errors, or http://x:y@other.example/path.',
      base,
    ),
  ).toBe(
    'POST https://gw.example:8443: 401 (key *** for ***); ' +
      'see https://docs.anthropic.com/en/api/errors, or http://other.example.',
  );
});

it("runAgent's error for a library caller holds no secret, printed whole with its causes", async () => {
  const dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
  await dispatcher.start();
  try {
    const [user, password, key] = SECRETS;
    const err = await runAgent({
      dispatcher,
      apiKey: 'test-key',
      baseURL: `http://${user}:${password}@${origin.slice('http://'.length)}/v1?gw_key=${key}`,
      model: 'claude-sonnet-4-6',
      prompt: 'hello',
      tools: [],
      logger: testLogger(),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_ERROR' });
    const printed = inspect(err, { depth: 10 });
    expect(printed).toContain(`cannot reach the Messages API at ${origin}`);
    for (const secret of SECRETS) expect(printed).not.toContain(secret);
  } finally {
    await dispatcher.close();
  }
});

it('a gateway URL without a key is no model: POST /v1/runs answers 503 NO_MODEL, not 202 and a failed run', async () => {
  const keyless = spawnCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_BASE_URL: origin,
    TOOLQ_API_TOKEN: TOKEN,
  });
  try {
    await waitFor(
      'the keyless coordinator to be ready',
      () => keyless.output().includes('"event":"ready"'),
      30_000,
    );
    const keylessUrl = /"event":"listening","url":"([^"]+)"/.exec(keyless.output())?.[1] ?? '';
    const res = await api(keylessUrl, '/v1/runs', {
      method: 'POST',
      token: TOKEN,
      body: { prompt: 'hello', tools: [] },
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'NO_MODEL',
      message: expect.stringContaining('ANTHROPIC_API_KEY'),
    });
  } finally {
    keyless.child.kill('SIGKILL');
    await keyless.exited;
  }
});
