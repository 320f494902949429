/**
 * The fair-share script with priorities (flow-store.ts FAIR_TAGS) on a real Redis: the order in
 * which BullMQ would start a tool queue's calls (ZPOPMIN of `prioritized`, whose scores are
 * priority × 2^32 + BullMQ's arrival counter, written here as BullMQ's addJob writes them).
 * Apps take turns; within an app, higher priorities first, the order sent within one.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { createRedis, fairTags, flowKeys, type Redis } from '../src/internal.ts';

let server: RedisServer;
let redis: Redis;
const fk = flowKeys('toolq');
const prioritized = fk.queueKey('t', 'prioritized');

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

beforeEach(async () => {
  await redis.flushall();
});

/** One batch enqueued: its tags from the script, then its jobs added as BullMQ adds them. */
async function enqueue(app: string, priority: number, ids: string[]): Promise<void> {
  const tags = await fairTags(redis, fk, 't', { app, priority, jobIds: ids });
  for (const [i, id] of ids.entries()) {
    const counter = await redis.incr(fk.queueKey('t', 'pc'));
    await redis.zadd(prioritized, (tags[i] as number) * 2 ** 32 + counter, id);
    await redis.hset(fk.queueKey('t', id), 'priority', tags[i] as number);
  }
}

/** The start order: lowest score first. */
const order = () => redis.zrange(prioritized, '0', '-1');
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('fair-share tags with priorities', () => {
  it("puts an app's high-priority calls before its waiting low ones, in turns with the other app", async () => {
    await enqueue('a', -1, names('low', 6));
    await enqueue('b', 0, names('b', 3));
    await enqueue('a', 5, names('high', 2));
    const started = await order();
    expect(started.filter((id) => id.startsWith('low') || id.startsWith('high'))).toEqual([
      ...names('high', 2),
      ...names('low', 6),
    ]);
    // b keeps a turn in every round (a's share did not grow); in a round, the older call first.
    expect(started.slice(0, 6)).toEqual(['b0', 'high0', 'b1', 'high1', 'low0', 'b2']);
    // Each job's `priority` field says its tag (BullMQ puts a job back with it).
    expect(await redis.hget(fk.queueKey('t', 'low0'), 'priority')).toBe('3');
  });

  it('keeps the order sent within a priority, and a middle priority between the others', async () => {
    await enqueue('a', 0, names('mid', 3));
    await enqueue('a', -3, names('low', 3));
    await enqueue('a', 0, names('mid', 5).slice(3));
    await enqueue('a', 7, names('top', 2));
    await enqueue('a', -3, names('low', 4).slice(3));
    expect(await order()).toEqual([...names('top', 2), ...names('mid', 5), ...names('low', 4)]);
  });

  it("moves at most 256 waiting calls back, and still starts the app's calls in order", async () => {
    await enqueue('a', -1, names('low', 300));
    await enqueue('b', 0, names('b', 300));
    await enqueue('a', 2, names('high', 3));
    const started = await order();
    expect(started.filter((id) => !id.startsWith('b'))).toEqual([...names('high', 3), ...names('low', 300)]);
    // Turns still alternate: at any point, a is at most its 3 new calls (and a round) ahead of b.
    let lead = 0;
    let most = 0;
    for (const id of started) {
      lead += id.startsWith('b') ? -1 : 1;
      most = Math.max(most, lead);
      expect(lead).toBeGreaterThanOrEqual(-1);
    }
    expect(most).toBeLessThanOrEqual(3 + 1);
    // A batch larger than the bound moves as many as it has calls.
    await enqueue('a', 9, names('top', 400));
    expect((await order()).filter((id) => !id.startsWith('b'))).toEqual([
      ...names('top', 400),
      ...names('high', 3),
      ...names('low', 300),
    ]);
  });

  it('skips calls that no longer wait (started, or removed at their deadline)', async () => {
    await enqueue('a', -1, names('low', 4));
    await redis.zrem(prioritized, 'low0', 'low1'); // started or removed
    await enqueue('a', 1, ['high0']);
    expect(await order()).toEqual(['high0', 'low2', 'low3']);
  });
});
