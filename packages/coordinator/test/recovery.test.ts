/**
 * Workers and Redis dying mid-batch: every batch still answers by its deadline, and the service
 * recovers without a restart. Workers are real CLI processes so they can be SIGKILLed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newActiveJobs } from '../../../test-support/active-jobs.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

/**
 * How late after its deadline a batch may answer: the deadline timer firing late on a loaded
 * machine. Without the deadline, the calls a dead worker held would never answer at all.
 */
const GRACE_MS = 5_000;

let server: RedisServer;
let dispatcher: Dispatcher;
let workers: WorkerProcess[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger(), sweepIntervalMs: 250 });
  await dispatcher.start();
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  workers = [];
});

afterAll(async () => {
  await dispatcher?.close();
  await server?.stop();
});

const sleeps = (n: number, ms: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `toolu_${i}`, name: 'diag_sleep', input: { ms } }));

async function startWorkers(n: number, concurrency?: number): Promise<void> {
  workers = await Promise.all(
    Array.from({ length: n }, () =>
      startWorkerProcess({ redisUrl: server.url, ...(concurrency ? { concurrency } : {}) }),
    ),
  );
  await dispatcher.catalog.refresh();
}

describe('a worker killed mid-batch', () => {
  it('by diag_crash: the crashed call times out at its deadline, the others succeed', async () => {
    // Two live workers: the batch goes as two jobs (chunks of calls run at once). One slot each:
    // the crashing worker cannot take both chunks, the other runs the chunk without the crash.
    await startWorkers(2, 1);
    const started = Date.now();
    const result = await dispatcher.dispatch(
      [{ id: 'crash', name: 'diag_crash', input: {} }, ...sleeps(6, 300)],
      { timeoutMs: 2_500 },
    );
    const elapsed = Date.now() - started;
    expect(result.toolResults[0]).toMatchObject({
      is_error: true,
      content: 'Tool diag_crash timed out after 2.5s',
    });
    // The crash takes down whatever else ran on that worker; those time out too, nothing hangs.
    const outcomes = result.calls.slice(1).map((c) => c.outcome);
    expect(outcomes.every((o) => o === 'ok' || o === 'timeout')).toBe(true);
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThan(0);
    expect(elapsed).toBeLessThan(2_500 + GRACE_MS);
    expect(workers.some((w) => w.child.signalCode === 'SIGKILL')).toBe(true);
  });

  it('from outside (SIGKILL): its calls run again on the other worker or time out, the other worker’s succeed', async () => {
    // The batch goes as one job per live worker (chunks of calls run at once; workers killed in
    // earlier tests may still count as live), and one slot each: once two of its jobs are active,
    // each worker runs one.
    await startWorkers(2, 1);
    const running = await newActiveJobs(dispatcher.queueFor('default'));
    const pending = dispatcher.dispatch(sleeps(16, 1_000), { timeoutMs: 6_000 });
    await running(2); // one job on each worker
    const [killed, survivor] = workers;
    await killed?.stop('SIGKILL');
    const result = await pending;
    const outcomes = result.calls.map((c) => c.outcome);
    expect(outcomes.every((o) => o === 'ok' || o === 'timeout')).toBe(true);
    // The killed worker's calls (at-least-once) run again on the survivor once the death is
    // noticed (docs/delivery.md), or time out first; everything that succeeded ran on the survivor.
    const ok = result.calls.filter((c) => c.outcome === 'ok');
    expect(ok.length).toBeGreaterThan(0);
    expect(ok.map((c) => c.worker)).toEqual(ok.map(() => survivor?.id));
    expect(result.wallMs).toBeLessThan(6_000 + GRACE_MS);
    // The survivor keeps serving.
    const after = await dispatcher.dispatch(sleeps(4, 50), { timeoutMs: 5_000 });
    expect(after.calls.every((c) => c.outcome === 'ok')).toBe(true);
  });
});

describe('Redis killed and restarted mid-batch', () => {
  it('answers every batch by its deadline and recovers without a restart', async () => {
    await startWorkers(2);
    const running = await newActiveJobs(dispatcher.queueFor('default'));
    const batches = Array.from({ length: 5 }, () =>
      dispatcher.dispatch(sleeps(5, 800), { timeoutMs: 3_000 }),
    );
    await running(); // the calls run on the workers
    await server.kill();
    // Deliberately down for a while: the batches must survive an outage, not a blip.
    await letTimePass(500);
    await server.start();
    const started = Date.now();
    const results = await Promise.all(batches);
    expect(Date.now() - started).toBeLessThan(3_000 + GRACE_MS);
    for (const result of results) {
      expect(result.toolResults).toHaveLength(5);
      // The restarted Redis is empty: a call whose job is gone is answered `error` (lost) early.
      expect(result.calls.every((c) => ['ok', 'timeout', 'error'].includes(c.outcome))).toBe(true);
      for (const r of result.toolResults.filter((t) => t.is_error && !/timed out/.test(String(t.content))))
        expect(r.content).toMatch(/^Error: the call was lost by Redis/);
    }
    // Recovery: the same dispatcher and workers serve new batches once the workers' heartbeats are back.
    await waitFor(
      'a batch to succeed again',
      async () => {
        const probe = await dispatcher.dispatch(sleeps(3, 10), { timeoutMs: 2_000 });
        return probe.calls.every((c) => c.outcome === 'ok');
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    expect(await dispatcher.isReady()).toBe(true);
  });

  it('answers a batch with its own id by the deadline while Redis is down', async () => {
    await startWorkers(1);
    await server.kill();
    try {
      const started = Date.now();
      const result = await dispatcher.dispatch(sleeps(2, 10), { timeoutMs: 800, batchId: 'during-outage' });
      expect(Date.now() - started).toBeLessThan(800 + GRACE_MS);
      expect(result.calls.map((c) => c.outcome)).toEqual(['timeout', 'timeout']);
    } finally {
      await server.start();
    }
  });
});
