/**
 * What a failover can lose, reproduced on one real Redis by deleting what the promoted replica
 * would not have: a batch record (the worker then refuses to write into it) or a queued job.
 * Either way a call of an at-most-once tool is answered is_error (outcome unknown: it may have
 * run) by the next sweep, long before its deadline, and a result the record did keep is still
 * delivered; a call of an at-least-once tool (it may run twice) is run again within its deadline.
 */
import { defineTool } from '@toolq/shared';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { Dispatcher } from '../src/index.ts';

let server: RedisServer;
let worker: ToolqWorker;
let soloWorker: ToolqWorker;
let dispatcher: Dispatcher;
let admin: Redis;

/** Runs of `solo_idempotent` by key: how many times the tool itself ran. */
const runs = new Map<string, number>();
const soloTools = [
  defineTool({
    name: 'solo_block',
    description: 'Holds the solo worker for `ms`.',
    input: z.object({ ms: z.number().int().min(0) }),
    run: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve('done'), ms)),
  }),
  defineTool({
    name: 'solo_once',
    description: 'Waits `ms`; must not run twice.',
    input: z.object({ ms: z.number().int().min(0) }),
    delivery: 'at-most-once',
    run: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve('done once'), ms)),
  }),
  defineTool({
    name: 'solo_idempotent',
    description: 'Waits `ms`, then answers with its key; running it twice is harmless.',
    input: z.object({ key: z.string(), ms: z.number().int().min(0) }),
    retry: { attempts: 2, backoffMs: 10 },
    run: async ({ key, ms }) => {
      runs.set(key, (runs.get(key) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return `value of ${key}`;
    },
  }),
];

beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url);
  worker = await startWorker({ tools: diagnostics, redisUrl: server.url, logger: testLogger() });
  // One call at a time: a call queued behind a running one waits in the queue, where it can be lost.
  soloWorker = await startWorker({
    tools: soloTools,
    pool: 'solo',
    concurrency: 1,
    redisUrl: server.url,
    logger: testLogger(),
  });
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
  await soloWorker?.close();
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

/** Waits for a dispatch's name record, then returns its uid. */
function dispatched(batchId: string): Promise<string> {
  return waitFor(`batch ${batchId} to be recorded`, () => uidOf(batchId), { intervalMs: 20 });
}

/** Waits until the job is in its queue's wait list (enqueued, not taken by a worker). */
async function waiting(jobId: string, pool: string): Promise<void> {
  await waitFor(
    `job ${jobId} to wait in pool ${pool}`,
    async () => {
      const [jobKey] = await admin.keys(`toolq:{${pool}*}:${jobId}`);
      if (!jobKey) return false;
      return (await admin.lpos(`${jobKey.slice(0, -(jobId.length + 1))}:wait`, jobId)) !== null;
    },
    { intervalMs: 20 },
  );
}

/** Waits until a worker of the pool runs a call (the solo worker's only slot is taken). */
async function running(pool: string): Promise<void> {
  await waitFor(
    `a call to run in pool ${pool}`,
    async () => {
      const keys = await admin.keys(`toolq:{${pool}*}:active`);
      for (const key of keys) if ((await admin.llen(key)) > 0) return true;
      return false;
    },
    { intervalMs: 20 },
  );
}

/** Deletes a waiting job as a promoted replica that never got it would lack it. */
async function loseWaitingJob(jobId: string, pool: string): Promise<void> {
  const [jobKey] = await admin.keys(`toolq:{${pool}*}:${jobId}`);
  if (!jobKey) throw new Error(`job ${jobId} is not in Redis`);
  const queue = jobKey.slice(0, -(jobId.length + 1));
  await admin.del(jobKey);
  expect(await admin.lrem(`${queue}:wait`, 0, jobId)).toBe(1);
}

async function lostCallsCounted(action: 'rerun' | 'error', pool: string): Promise<number> {
  const metric = await dispatcher.registry.getSingleMetric('toolq_lost_calls_total')?.get();
  return metric?.values.find((v) => v.labels.action === action && v.labels.pool === pool)?.value ?? 0;
}

const LOST = /^Error: the call was lost by Redis \(a failover or a restart without persistence\)/;
const INTERRUPTED = (tool: string) =>
  new RegExp(
    `^Error: outcome unknown: the call to ${tool} was interrupted after it started \\(Redis lost its job in a failover or a restart without persistence\\)\\. It may or may not have taken effect`,
  );

describe('writes a failover lost', () => {
  it('a lost batch record: the refused result (at-most-once) is answered outcome unknown at the next sweep, the kept one arrives', async () => {
    const started = Date.now();
    const pending = dispatcher.dispatch(
      [
        { id: 'fast', name: 'diag_echo', input: { value: 'kept' } },
        { id: 'slow', name: 'solo_once', input: { ms: 600 } },
      ],
      { timeoutMs: 20_000, batchId: 'lost-record' },
    );
    // The fast result is in; then the record vanishes, as on a replica promoted before it synced.
    const record = `toolq:{c.lost}:batch:${await waitFor('the batch', () => uidOf('lost-record'))}`;
    await waitFor('the fast result', async () => (await admin.hexists(record, 'r:0')) === 1, {
      intervalMs: 10,
    });
    expect(await admin.del(record)).toBe(1);
    const result = await pending;
    expect(result.toolResults[0]).toMatchObject({ tool_use_id: 'fast', content: 'kept' });
    expect(result.toolResults[1]).toMatchObject({ tool_use_id: 'slow', is_error: true });
    expect(result.toolResults[1]?.content).toMatch(INTERRUPTED('solo_once'));
    expect(result.calls[1]?.outcome).toBe('unknown');
    expect(Date.now() - started).toBeLessThan(10_000); // not its 20 s deadline
    // No fragment: the worker wrote nothing into the vanished record (the coordinator's own
    // `answered` mark, with its TTL, is all there is). Deliberately waits past the slow call's end.
    await letTimePass(800);
    expect(await admin.hkeys(record)).toEqual(['answered']);
  });

  it('a lost job of an at-most-once tool: answered outcome unknown at the next sweep', async () => {
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
        tools: [
          {
            name: 'idle_tool',
            description: 'd',
            input_schema: { type: 'object' },
            timeoutMs: 20_000,
            delivery: 'at-most-once',
          },
        ],
      }),
    );
    await dispatcher.catalog.refresh();
    const started = Date.now();
    const pending = dispatcher.dispatch([{ id: 'x', name: 'idle_tool', input: {} }], { batchId: 'lost-job' });
    const job = `${await dispatched('lost-job')}.0`;
    await waiting(job, 'idle');
    await loseWaitingJob(job, 'idle');
    const result = await pending;
    expect(result.toolResults[0]?.is_error).toBe(true);
    expect(result.toolResults[0]?.content).toMatch(INTERRUPTED('idle_tool'));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a call still running is not taken for lost', async () => {
    const result = await dispatcher.dispatch([{ id: 'long', name: 'diag_sleep', input: { ms: 2_000 } }], {
      timeoutMs: 20_000,
    });
    expect(result.toolResults[0]).toMatchObject({ content: '{"slept_ms":2000}' });
    expect(result.toolResults[0]?.is_error).toBeUndefined();
  });

  it('a lost job of a tool that may run twice is run again and answered with its result', async () => {
    const rerunsBefore = await lostCallsCounted('rerun', 'solo');
    // Holds the worker's only slot long enough for a loaded machine to lose the job behind it.
    const hold = dispatcher.dispatch([{ id: 'hold', name: 'solo_block', input: { ms: 3_000 } }]);
    await running('solo');
    const started = Date.now();
    const pending = dispatcher.dispatch(
      [
        { id: 'idem', name: 'solo_idempotent', input: { key: 'lost-job', ms: 10 } },
        { id: 'echo', name: 'diag_echo', input: { value: 'beside it' } },
      ],
      { timeoutMs: 15_000, batchId: 'rerun-job' },
    );
    const uid = await dispatched('rerun-job');
    await waiting(`${uid}.0`, 'solo');
    await loseWaitingJob(`${uid}.0`, 'solo');
    const result = await pending;
    expect(result.toolResults.map((r) => [r.tool_use_id, r.content, r.is_error])).toEqual([
      ['idem', 'value of lost-job', undefined],
      ['echo', 'beside it', undefined],
    ]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(runs.get('lost-job')).toBe(1); // the lost job never ran; its re-run did
    expect(await lostCallsCounted('rerun', 'solo')).toBe(rerunsBefore + 1);
    // The record names the new job, for a collector on another coordinator.
    const meta = JSON.parse((await admin.hget(`toolq:{c.lost}:batch:${uid}`, 'meta')) ?? '{}');
    expect(meta.calls[0].job).toBe(`${uid}.r1.0`);
    await hold;
  });

  it('a collector on another coordinator follows the re-run: it answers with the result, not "lost"', async () => {
    const collector = new Dispatcher({
      redisUrl: server.url,
      coordinatorId: 'collector',
      logger: testLogger(),
    });
    await collector.start();
    try {
      const hold = dispatcher.dispatch([{ id: 'hold', name: 'solo_block', input: { ms: 3_000 } }]);
      await running('solo');
      const sent = dispatcher.dispatch(
        [{ id: 'idem', name: 'solo_idempotent', input: { key: 'collected', ms: 10 } }],
        { timeoutMs: 15_000, batchId: 'rerun-collected' },
      );
      const job = `${await dispatched('rerun-collected')}.0`;
      await waiting(job, 'solo');
      const collected = collector.collect('rerun-collected'); // its answer, once it has one
      await letTimePass(100); // its first read of the record, before the job goes
      await loseWaitingJob(job, 'solo');
      // The collector reads every 250 ms and sees the job gone before the dispatcher's sweep
      // (back-off 600 ms) re-runs it.
      const [mine, theirs] = await Promise.all([sent, collected]);
      if (!theirs) throw new Error('the collector found no batch');
      expect(mine.toolResults[0]).toMatchObject({ content: 'value of collected' });
      expect(theirs.toolResults).toEqual(mine.toolResults);
      expect(runs.get('collected')).toBe(1);
      await hold;
    } finally {
      await collector.close();
    }
  });

  it('a lost record: a call of a tool that may run twice is run again into a new record', async () => {
    const pending = dispatcher.dispatch(
      [{ id: 'idem', name: 'solo_idempotent', input: { key: 'lost-record', ms: 2_000 } }],
      { timeoutMs: 15_000, batchId: 'rerun-record' },
    );
    await waitFor('the call to run on the worker', () => runs.get('lost-record') === 1, { intervalMs: 10 });
    const record = `toolq:{c.lost}:batch:${await uidOf('rerun-record')}`;
    expect(await admin.del(record)).toBe(1);
    const result = await pending;
    expect(result.toolResults[0]).toMatchObject({ tool_use_id: 'idem', content: 'value of lost-record' });
    expect(result.toolResults[0]?.is_error).toBeUndefined();
    // The first run's result was refused (no record to write it into); the re-run's was kept.
    expect(runs.get('lost-record')).toBe(2);
  });

  it('a call lost again and again is re-run twice, then answered is_error within its deadline', async () => {
    const errorsBefore = await lostCallsCounted('error', 'idle');
    // The idle pool's worker never takes a job; this tool of it may run twice.
    await admin.hset(
      'toolq:workers',
      'idle-idempotent',
      JSON.stringify({
        id: 'idle-idempotent',
        pool: 'idle',
        host: 'h',
        pid: 1,
        concurrency: 1,
        startedAt: Date.now(),
        heartbeatAt: Date.now() + 60_000,
        tools: [
          {
            name: 'idle_tool',
            description: 'd',
            input_schema: { type: 'object' },
            timeoutMs: 20_000,
            delivery: 'at-most-once',
          },
          {
            name: 'idle_idempotent',
            description: 'd',
            input_schema: { type: 'object' },
            timeoutMs: 20_000,
            retry: { attempts: 3, backoffMs: 10 },
          },
        ],
      }),
    );
    await dispatcher.catalog.refresh();
    const started = Date.now();
    const pending = dispatcher.dispatch([{ id: 'x', name: 'idle_idempotent', input: {} }], {
      batchId: 'lost-thrice',
    });
    let answered = false;
    void pending.finally(() => {
      answered = true;
    });
    const uid = await dispatched('lost-thrice');
    const lostJobs: string[] = [];
    for (const jobId of [`${uid}.0`, `${uid}.r1.0`, `${uid}.r2.0`]) {
      // Each re-run's job appears, and is lost in its turn.
      while (!answered && (await admin.keys(`toolq:{idle*}:${jobId}`)).length === 0)
        await new Promise((resolve) => setTimeout(resolve, 50));
      if (answered) break;
      await loseWaitingJob(jobId, 'idle');
      lostJobs.push(jobId);
    }
    const result = await pending;
    expect(lostJobs).toHaveLength(3);
    expect(result.toolResults[0]?.is_error).toBe(true);
    expect(result.toolResults[0]?.content).toMatch(LOST);
    expect(Date.now() - started).toBeLessThan(15_000); // not its 20 s deadline
    expect(await lostCallsCounted('error', 'idle')).toBe(errorsBefore + 1);
    expect(await admin.keys(`toolq:{idle*}:${uid}.r3.0`)).toEqual([]);
  });
});
