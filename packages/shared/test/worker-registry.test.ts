/**
 * The worker catalog read on a real Redis, with heartbeats that go back in time as they do after
 * a failover to a replica that missed the latest beats: a reader that remembers the newest beat
 * it saw keeps the worker live until that beat is stale, and no longer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import {
  createKeys,
  createRedis,
  type HeartbeatMemory,
  publishPoolMode,
  publishWorker,
  type Redis,
  readWaitingPools,
  readWorkers,
  unpublishWorker,
  type WorkerInfo,
} from '../src/internal.ts';
import { WAITING_TOOL_FORGET_MS, WORKER_STALE_AFTER_MS } from '../src/worker-registry.ts';

let server: RedisServer;
let redis: Redis;
const keys = createKeys('toolq');

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const worker = (id: string, heartbeatAt: number): WorkerInfo => ({
  id,
  pool: 'p',
  host: 'h',
  pid: 1,
  concurrency: 1,
  startedAt: 1,
  heartbeatAt,
  tools: [],
});

const liveIds = async (now: number, memory?: HeartbeatMemory) =>
  (await readWorkers(redis, keys, now, memory)).live.map((w) => w.id);

describe('readWorkers with a heartbeat memory', () => {
  it('keeps a worker live when its heartbeat goes back in time, until the newest beat seen is stale', async () => {
    const now = Date.now();
    const memory: HeartbeatMemory = new Map();
    await publishWorker(redis, keys, worker('w1', now));
    expect(await liveIds(now, memory)).toEqual(['w1']);
    // The promoted replica's copy: the beats of the last 20 s never reached it.
    await publishWorker(redis, keys, worker('w1', now - 20_000));
    expect(await liveIds(now + 1_000)).toEqual([]); // what a reader without memory concludes
    expect(await liveIds(now + 1_000, memory)).toEqual(['w1']);
    // No beat since: the worker is gone once the newest beat it sent is stale.
    expect(await liveIds(now + WORKER_STALE_AFTER_MS + 1, memory)).toEqual([]);
    await unpublishWorker(redis, keys, 'w1');
  });

  it('forgets a worker that left the catalog', async () => {
    const now = Date.now();
    const memory: HeartbeatMemory = new Map();
    await publishWorker(redis, keys, worker('w2', now));
    await liveIds(now, memory);
    expect(memory.has('w2')).toBe(true);
    await unpublishWorker(redis, keys, 'w2');
    expect(await liveIds(now, memory)).toEqual([]);
    expect(memory.has('w2')).toBe(false);
    // Back with an old beat (a failover that lost the removal): nothing of the old memory remains.
    await publishWorker(redis, keys, worker('w2', now - 20_000));
    expect(await liveIds(now, memory)).toEqual([]);
    await unpublishWorker(redis, keys, 'w2');
  });
});

describe('a waiting pool (scale from zero)', () => {
  it('forgets a tool no worker has served for WAITING_TOOL_FORGET_MS', async () => {
    const now = Date.now();
    const spec = { name: 'weekly_job', description: '', input_schema: { type: 'object' }, timeoutMs: 1_000 };
    await publishPoolMode(redis, keys, 'weekly', true, [spec], { id: 'w9', startedAt: now }, { now });
    const tools = async (at: number) =>
      (await readWaitingPools(redis, keys, at)).find((p) => p.pool === 'weekly')?.tools.map((t) => t.name);
    expect(await tools(now + WAITING_TOOL_FORGET_MS)).toEqual(['weekly_job']); // a weekend at zero
    expect(await tools(now + WAITING_TOOL_FORGET_MS + 1)).toEqual([]);
    await redis.hdel(keys.waitingPools(), 'weekly');
  });
});
