/**
 * The two failure modes measured with a QueueEvents barrier (docs/architecture.md): completions lost right
 * after start-up, and batches hung forever in a burst. Here every call must come back.
 */
import { createKeys, createRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

let server: RedisServer;
let workers: WorkerProcess[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  workers = await Promise.all(
    [1, 2].map(() => startWorkerProcess({ redisUrl: server.url, concurrency: 200 })),
  );
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await server?.stop();
});

function expectAllEchoed(
  results: { toolResults: { tool_use_id: string; content: unknown; is_error?: true }[] }[],
  ids: string[][],
) {
  results.forEach((result, b) => {
    expect(result.toolResults.map((r) => r.tool_use_id)).toEqual(ids[b]);
    result.toolResults.forEach((r, i) => {
      expect(r.is_error).toBeUndefined();
      expect(r.content).toBe(`${b}:${i}`);
    });
  });
}

describe('no lost completions', () => {
  it('start race: 2,000 single-call batches submitted the moment the dispatcher is up', async () => {
    const dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
    await dispatcher.start();
    const ids = Array.from({ length: 2_000 }, (_, b) => [`toolu_${b}`]);
    const results = await Promise.all(
      ids.map((batch, b) =>
        dispatcher.dispatch([{ id: batch[0] as string, name: 'diag_echo', input: { value: `${b}:0` } }], {
          timeoutMs: 60_000,
        }),
      ),
    );
    expectAllEchoed(results, ids);
    await dispatcher.close();
  });

  it('burst: 20,000 calls in flight at once (200 batches × 100), all answered, none lost', async () => {
    const dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
    await dispatcher.start();
    const ids = Array.from({ length: 200 }, (_, b) =>
      Array.from({ length: 100 }, (_, i) => `toolu_${b}_${i}`),
    );
    const results = await Promise.all(
      ids.map((batch, b) =>
        dispatcher.dispatch(
          batch.map((id, i) => ({ id, name: 'diag_echo', input: { value: `${b}:${i}` } })),
          { timeoutMs: 100_000 },
        ),
      ),
    );
    expectAllEchoed(results, ids);
    const late = await dispatcher.registry.getSingleMetricAsString('toolq_late_results_total');
    expect(late).toMatch(/toolq_late_results_total\{[^}]*\} 0/);
    // The reader trims what it has read: 20,000 notifications do not stay in Redis.
    const redis = createRedis(server.url);
    const stream = createKeys('toolq').replyStream(dispatcher.coordinatorId);
    let length = await redis.xlen(stream);
    for (let i = 0; i < 40 && length > 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      length = await redis.xlen(stream);
    }
    expect(length).toBeLessThanOrEqual(1);
    redis.disconnect();
    await dispatcher.close();
  });
});
