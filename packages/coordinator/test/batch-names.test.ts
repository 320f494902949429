/**
 * A batch id names one batch across the fleet: two coordinators cannot both run it, nothing of one
 * batch (jobs, cancellations, workers' skip lists) acts on another that reuses its name, and any
 * coordinator can collect it — joining it, not replacing it, while it is still waiting.
 */
import { createKeys, createRedis, type Redis, readBatchOwner } from '@toolq/shared/internal';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { Dispatcher } from '../src/index.ts';

/**
 * Short, so that expiry can be waited for; but well over a collector's 250 ms reads: a collector
 * that joined a waiting batch reads the owner's record, and once the owner has answered, the record
 * lives for this long only (at 400 ms a loaded machine let it expire before the last read).
 */
const RETENTION_MS = 1_500;

let server: RedisServer;
let worker: ToolqWorker;
let a: Dispatcher;
let b: Dispatcher;
let redis: Redis;
const keys = createKeys('toolq');

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  worker = await startWorker({
    tools: diagnostics.filter((t) => t.name !== 'diag_crash'),
    redisUrl: server.url,
    logger: testLogger(),
  });
  a = new Dispatcher({
    redisUrl: server.url,
    coordinatorId: 'coord-a',
    logger: testLogger(),
    batchRetentionMs: RETENTION_MS,
  });
  b = new Dispatcher({
    redisUrl: server.url,
    coordinatorId: 'coord-b',
    logger: testLogger(),
    batchRetentionMs: RETENTION_MS,
  });
  await Promise.all([a.start(), b.start()]);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await worker?.close();
  redis?.disconnect();
  await server?.stop();
});

const sleep = (id: string, ms: number) => ({ id, name: 'diag_sleep', input: { ms } });
const echo = (id: string, value: unknown) => ({ id, name: 'diag_echo', input: { value } });
/** Resolves once a batch of that id is recorded (its name taken), whoever dispatched it. */
const recorded = (batchId: string) =>
  waitFor(
    `batch ${batchId} to be recorded`,
    () => readBatchOwner(redis, keys.batchName('default', batchId)),
    {
      intervalMs: 20,
    },
  );

describe('one name, one batch', () => {
  it('a second coordinator cannot dispatch a taken id, and cannot cancel the first batch', async () => {
    const first = b.dispatch([sleep('s', 1_500)], { batchId: 'order-42', timeoutMs: 10_000 });
    await recorded('order-42');
    await expect(
      a.dispatch([sleep('s', 10)], { batchId: 'order-42', timeoutMs: 1_000 }),
    ).rejects.toMatchObject({
      code: 'BATCH_EXISTS',
    });
    await letTimePass(1_200); // deliberately past the refused batch's deadline: nothing of it may touch the first
    const result = await first;
    expect(result.toolResults).toEqual([
      { type: 'tool_result', tool_use_id: 's', content: '{"slept_ms":1500}' },
    ]);
  });

  it('an id whose record expired runs again, although workers saw the old batch cancelled', async () => {
    const timedOut = await a.dispatch([sleep('s', 2_000)], { batchId: 'reused', timeoutMs: 200 });
    expect(timedOut.calls[0]?.outcome).toBe('timeout');
    // The name lives for the batch's timeout plus the retention.
    const nameKey = keys.batchName('default', 'reused');
    await waitFor('the name to expire', async () => (await redis.exists(nameKey)) === 0);
    const again = await b.dispatch([echo('e', 'second life')], { batchId: 'reused', timeoutMs: 5_000 });
    expect(again.toolResults).toEqual([{ type: 'tool_result', tool_use_id: 'e', content: 'second life' }]);
  });

  it('ids are scoped to an app: another app may use the same id and cannot collect the first', async () => {
    const mine = await a.dispatch([echo('e', 'app one')], { batchId: 'same-name', app: 'one' });
    expect(mine.toolResults[0]?.content).toBe('app one');
    expect(await b.collect('same-name', { app: 'two' })).toBeUndefined();
    const theirs = await b.dispatch([echo('e', 'app two')], { batchId: 'same-name', app: 'two' });
    expect(theirs.toolResults[0]?.content).toBe('app two');
    expect((await a.collect('same-name', { app: 'one' }))?.toolResults[0]?.content).toBe('app one');
  });
});

describe('collecting', () => {
  it('joins a batch still waiting in the same process: both answer with the result', async () => {
    const started = Date.now();
    const dispatched = a.dispatch([sleep('s', 800)], { batchId: 'join-1', timeoutMs: 10_000 });
    await recorded('join-1');
    const collected = await a.collect('join-1');
    const result = await dispatched;
    // With the result, not at the 10 s deadline.
    expect(Date.now() - started).toBeLessThan(10_000);
    for (const r of [result, collected]) {
      expect(r?.toolResults).toEqual([
        { type: 'tool_result', tool_use_id: 's', content: '{"slept_ms":800}' },
      ]);
      expect(r?.batchId).toBe('join-1');
    }
  });

  it('from another coordinator, while the batch waits and after it was answered', async () => {
    const started = Date.now();
    const dispatched = a.dispatch([sleep('s', 600), echo('e', 'x')], {
      batchId: 'anywhere-1',
      timeoutMs: 10_000,
    });
    await recorded('anywhere-1');
    const collected = await b.collect('anywhere-1');
    // With the result, not at the 10 s deadline.
    expect(Date.now() - started).toBeLessThan(10_000);
    const expected = [
      { type: 'tool_result', tool_use_id: 's', content: '{"slept_ms":600}' },
      { type: 'tool_result', tool_use_id: 'e', content: 'x' },
    ];
    expect(collected?.toolResults).toEqual(expected);
    expect((await dispatched).toolResults).toEqual(expected);
    expect((await b.collect('anywhere-1'))?.toolResults).toEqual(expected);
  });

  it('keeps an answered record for the retention only', async () => {
    await a.dispatch([echo('e', 1)], { batchId: 'retained', timeoutMs: 30_000 });
    const owner = await readBatchOwner(redis, keys.batchName('default', 'retained'));
    const ttl = await redis.pttl(keys.batch('coord-a', owner?.uid ?? ''));
    // Without the retention it would stay for the 30 s timeout plus the retention.
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RETENTION_MS);
  });

  it('keeps the name of an answered batch no longer than its record, random id or own', async () => {
    for (const batchId of [undefined, 'named-retained']) {
      const result = await a.dispatch([echo('e', 1)], { timeoutMs: 30_000, ...(batchId ? { batchId } : {}) });
      const nameKey = keys.batchName('default', result.batchId);
      const owner = await readBatchOwner(redis, nameKey);
      expect(owner?.coordinatorId).toBe('coord-a');
      // The record's retention, not the 30 s timeout plus it: the name must not outlive the record.
      await expect.poll(() => redis.pttl(nameKey), { timeout: 2_000 }).toBeLessThanOrEqual(RETENTION_MS);
      expect(await redis.pttl(nameKey)).toBeGreaterThan(0);
    }
  });
});
