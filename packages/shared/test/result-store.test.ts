/**
 * The worker's result script on a real Redis: it writes into a batch record that exists, once,
 * with one notification; a record that is gone (expired, or lost with a failed-over master) gets
 * no fragment and no notification; a re-sent write (a reconnect) notifies nobody twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { type CallResult, CONTRACT_VERSION } from '../src/index.ts';
import { claimBatch, createKeys, createRedis, type Redis, storeResult } from '../src/internal.ts';

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

const result = (content: string): CallResult => ({
  v: CONTRACT_VERSION,
  toolUseId: 't1',
  tool: 'x',
  outcome: 'ok',
  content,
  isError: false,
  attempts: 1,
  enqueuedAt: Date.now(),
});

const target = (batchId: string) => ({
  batchId,
  index: 0,
  batchKey: keys.batch('coord', batchId),
  streamKey: keys.replyStream('coord'),
  deadline: Date.now() + 10_000,
});

const notificationsFor = async (batchId: string) =>
  (await redis.xrange(keys.replyStream('coord'), '-', '+')).filter(([, f]) => f[1] === batchId).length;

describe('the result script', () => {
  it('writes once into an existing record and notifies once; a re-sent write is a duplicate', async () => {
    const t = target('b-exists');
    await claimBatch(redis, t.batchKey, { createdAt: Date.now(), calls: [] }, 60_000);
    expect(await storeResult(redis, t, result('first'))).toBe('written');
    expect(await storeResult(redis, t, result('again'))).toBe('duplicate');
    expect(JSON.parse((await redis.hget(t.batchKey, 'r:0')) ?? '{}').content).toBe('first');
    expect(await notificationsFor('b-exists')).toBe(1);
  });

  it('refuses a record that is gone: no fragment, no notification', async () => {
    const t = target('b-gone');
    expect(await storeResult(redis, t, result('late'))).toBe('batch_gone');
    expect(await redis.exists(t.batchKey)).toBe(0);
    expect(await notificationsFor('b-gone')).toBe(0);
  });
});
