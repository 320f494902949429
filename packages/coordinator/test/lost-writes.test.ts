/**
 * What a failover can lose, reproduced on one real Redis by deleting what the promoted replica
 * would not have: a batch record (the worker then refuses to write into it) or a queued job.
 * Either way the call is answered is_error by the next sweep, long before its deadline, and a
 * result the record did keep is still delivered.
 */
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { Dispatcher } from '../src/index.ts';

let server: RedisServer;
let worker: ToolqWorker;
let dispatcher: Dispatcher;
let admin: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url);
  worker = await startWorker({ tools: diagnostics, redisUrl: server.url, logger: testLogger() });
  dispatcher = new Dispatcher({
    redisUrl: server.url,
    coordinatorId: 'lost',
    logger: testLogger(),
    sweepIntervalMs: 300,
  });
  await dispatcher.start();
});

afterAll(async () => {
  await dispatcher?.close();
  await worker?.close();
  admin?.disconnect();
  await server?.stop();
});

/** A dispatch's own uid (its record and jobs use it; the caller's batch id is only its name). */
async function uidOf(batchId: string): Promise<string> {
  const owner = await admin.get(`toolq:batch-name:default:${batchId}`);
  const uid = owner?.split(' ')[1];
  if (!uid) throw new Error(`batch ${batchId} has no name record`);
  return uid;
}

const LOST = /^Error: the call was lost by Redis \(a failover or a restart without persistence\)/;

describe('writes a failover lost', () => {
  it('a lost batch record: the refused result is answered is_error at the next sweep, the kept one arrives', async () => {
    const started = Date.now();
    const pending = dispatcher.dispatch(
      [
        { id: 'fast', name: 'diag_echo', input: { value: 'kept' } },
        { id: 'slow', name: 'diag_sleep', input: { ms: 600 } },
      ],
      { timeoutMs: 20_000, batchId: 'lost-record' },
    );
    // The fast result is in; then the record vanishes, as on a replica promoted before it synced.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const record = `toolq:{c.lost}:batch:${await uidOf('lost-record')}`;
    expect(await admin.del(record)).toBe(1);
    const result = await pending;
    expect(result.toolResults[0]).toMatchObject({ tool_use_id: 'fast', content: 'kept' });
    expect(result.toolResults[1]).toMatchObject({ tool_use_id: 'slow', is_error: true });
    expect(result.toolResults[1]?.content).toMatch(LOST);
    expect(Date.now() - started).toBeLessThan(10_000); // not its 20 s deadline
    // No fragment: the worker wrote nothing into the vanished record (the coordinator's own
    // `answered` mark, with its TTL, is all there is).
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(await admin.hkeys(record)).toEqual(['answered']);
  });

  it('a lost job: answered is_error at the next sweep', async () => {
    // A pool whose worker never takes the job, so only the loss can answer it before the deadline.
    await admin.hset(
      'toolq:workers',
      'idle-worker',
      JSON.stringify({
        id: 'idle-worker',
        pool: 'idle',
        host: 'h',
        pid: 1,
        concurrency: 1,
        startedAt: Date.now(),
        heartbeatAt: Date.now() + 60_000,
        tools: [{ name: 'idle_tool', description: 'd', input_schema: { type: 'object' }, timeoutMs: 20_000 }],
      }),
    );
    await dispatcher.catalog.refresh();
    const started = Date.now();
    const pending = dispatcher.dispatch([{ id: 'x', name: 'idle_tool', input: {} }], { batchId: 'lost-job' });
    await new Promise((resolve) => setTimeout(resolve, 250));
    const jobId = `${await uidOf('lost-job')}.0`;
    const [jobKey] = await admin.keys(`toolq:{idle*}:${jobId}`);
    expect(jobKey).toBeDefined();
    const queue = (jobKey ?? '').slice(0, -(jobId.length + 1));
    await admin.del(jobKey ?? '');
    expect(await admin.lrem(`${queue}:wait`, 0, jobId)).toBe(1);
    const result = await pending;
    expect(result.toolResults[0]?.is_error).toBe(true);
    expect(result.toolResults[0]?.content).toMatch(LOST);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a call still running is not taken for lost', async () => {
    const result = await dispatcher.dispatch([{ id: 'long', name: 'diag_sleep', input: { ms: 2_000 } }], {
      timeoutMs: 20_000,
    });
    expect(result.toolResults[0]).toMatchObject({ content: '{"slept_ms":2000}' });
    expect(result.toolResults[0]?.is_error).toBeUndefined();
  });
});
