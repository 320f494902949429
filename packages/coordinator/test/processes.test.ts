/**
 * The commands as operators run them: `pnpm coordinator` and `pnpm worker --tools diagnostics` as
 * separate processes, and the workers' two-stage shutdown.
 */

import { createKeys, createRedis, readBatchOwner } from '@toolq/shared/internal';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newActiveJobs } from '../../../test-support/active-jobs.ts';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, maxOverlap, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

let server: RedisServer;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;

beforeAll(async () => {
  server = await startRedisServer();
  coordinator = await startCoordinatorProcess({ REDIS_URL: server.url });
});

/** Waiting for the next call to run on a worker (the pool's queue, watched from the test's own connection). */
async function nextCallRunning(): Promise<() => Promise<void>> {
  const queue = new Queue('{default}', { connection: { url: server.url }, prefix: 'toolq' });
  const running = await newActiveJobs(queue);
  return () => running().finally(() => queue.close());
}

afterAll(async () => {
  coordinator?.child.kill('SIGTERM');
  await coordinator?.exited;
  await server?.stop();
});

const postBatch = (url: string, body: object) =>
  fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** A worker and a coordinator of the test's own (to signal or kill), stopped afterwards whatever happens. */
async function withOwnCoordinator(
  env: Record<string, string>,
  test: (coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>) => Promise<void>,
): Promise<void> {
  const worker = await startWorkerProcess({ redisUrl: server.url });
  const own = await startCoordinatorProcess({ REDIS_URL: server.url, ...env });
  try {
    await test(own);
  } finally {
    own.child.kill('SIGKILL');
    await worker.stop();
  }
}

async function batch(toolUses: { id: string; name: string; input: unknown }[], timeoutMs = 10_000) {
  const res = await postBatch(coordinator.url, { tool_uses: toolUses, timeout_ms: timeoutMs });
  expect(res.status).toBe(200);
  return (await res.json()) as {
    tool_results: { content: string; is_error?: true }[];
    stats: {
      wall_ms: number;
      calls: { worker?: string; outcome: string; queue_wait_ms?: number; run_ms?: number }[];
    };
  };
}

const sleeps = (n: number, ms: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `t${i}`, name: 'diag_sleep', input: { ms } }));

describe('coordinator and workers as processes', () => {
  it('two workers answer eight 400 ms sleeps in parallel', async () => {
    // One slot each: the batch's two jobs (one per live worker) cannot both go to one worker.
    const workers = await Promise.all(
      [1, 2].map(() => startWorkerProcess({ redisUrl: server.url, concurrency: 1 })),
    );
    try {
      // The batch is cut into one job per live worker the coordinator knows of: under load the
      // second worker's heartbeat can reach its catalog after the batch, so wait until it counts both.
      await waitFor('the coordinator to count both workers', async () => {
        const res = await fetch(`${coordinator.url}/v1/tools`);
        const { tools } = (await res.json()) as { tools: { name: string; live_workers: number }[] };
        return tools.find((t) => t.name === 'diag_sleep')?.live_workers === 2;
      });
      await batch(sleeps(2, 1)); // warm-up: connections
      const started = Date.now();
      const body = await batch(sleeps(8, 400));
      const elapsed = Date.now() - started;
      expect(body.tool_results.every((r) => r.content === '{"slept_ms":400}')).toBe(true);
      // Both workers ran calls, and at the same time: more calls ran at once than either worker's
      // share (the workers' recorded starts and finishes, in ms after the batch was enqueued).
      const workersUsed = new Set(body.stats.calls.map((c) => c.worker));
      expect(workersUsed).toEqual(new Set(workers.map((w) => w.id)));
      const runs = body.stats.calls.map((c) => {
        const start = c.queue_wait_ms ?? Number.NaN;
        return { start, end: start + (c.run_ms ?? Number.NaN) };
      });
      expect(maxOverlap(runs)).toBeGreaterThan(4);
      console.info(
        `8 x 400 ms through HTTP, 2 worker processes: ${elapsed} ms (batch wall ${body.stats.wall_ms} ms, ` +
          `${maxOverlap(runs)} at once)`,
      );
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });

  it('SIGTERM lets a running call finish, then the worker exits 0', async () => {
    const worker = await startWorkerProcess({ redisUrl: server.url });
    const running = await nextCallRunning();
    const pending = batch([{ id: 'a', name: 'diag_sleep', input: { ms: 800 } }]);
    await running();
    worker.child.kill('SIGTERM');
    const body = await pending;
    expect(body.tool_results[0]?.content).toBe('{"slept_ms":800}');
    expect(await worker.exited).toBe(0);
  });

  it('a call still running at the shutdown bound goes back to the queue and another worker runs it', async () => {
    const first = await startWorkerProcess({
      redisUrl: server.url,
      env: { TOOLQ_SHUTDOWN_TIMEOUT_MS: '300' },
    });
    const running = await nextCallRunning();
    const pending = batch([{ id: 'a', name: 'diag_sleep', input: { ms: 1_500 } }], 15_000);
    await running();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const second = await startWorkerProcess({ redisUrl: server.url });
    try {
      const body = await pending;
      expect(body.tool_results[0]).toEqual({
        type: 'tool_result',
        tool_use_id: 'a',
        content: '{"slept_ms":1500}',
      });
      expect(body.stats.calls[0]?.worker).toBe(second.id);
    } finally {
      await second.stop();
    }
  });
});

describe('chunks and worker shutdown', () => {
  it('a chunk given back at the shutdown bound runs its unfinished calls on another worker, not its finished ones', async () => {
    const first = await startWorkerProcess({
      redisUrl: server.url,
      env: { TOOLQ_SHUTDOWN_TIMEOUT_MS: '400' },
    });
    const running = await nextCallRunning();
    const pending = batch(
      [
        { id: 'quick', name: 'diag_sleep', input: { ms: 50 } },
        { id: 'slow1', name: 'diag_sleep', input: { ms: 1_500 } },
        { id: 'slow2', name: 'diag_sleep', input: { ms: 1_500 } },
      ],
      15_000,
    );
    // Once the chunk runs; the quick call finishes within the 400 ms shutdown bound.
    await running();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const second = await startWorkerProcess({ redisUrl: server.url });
    try {
      const body = await pending;
      expect(body.tool_results.map((r) => r.content)).toEqual([
        '{"slept_ms":50}',
        '{"slept_ms":1500}',
        '{"slept_ms":1500}',
      ]);
      expect(body.stats.calls.map((c) => c.worker)).toEqual([first.id, second.id, second.id]);
    } finally {
      await second.stop();
    }
  });
});

describe('coordinator shutdown', () => {
  it('SIGTERM lets an in-flight batch finish, refuses new work, then exits 0', async () => {
    await withOwnCoordinator({}, async (draining) => {
      const running = await nextCallRunning();
      const request = postBatch(draining.url, {
        tool_uses: [{ id: 'a', name: 'diag_sleep', input: { ms: 800 } }],
      });
      await running();
      draining.child.kill('SIGTERM');
      const res = await request;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { tool_results: unknown[] }).tool_results).toEqual([
        { type: 'tool_result', tool_use_id: 'a', content: '{"slept_ms":800}' },
      ]);
      expect(await draining.exited).toBe(0);
      await expect(fetch(`${draining.url}/healthz`)).rejects.toThrow();
    });
  });

  it('answers what is still running as cancelled when the drain bound passes', async () => {
    await withOwnCoordinator({ TOOLQ_SHUTDOWN_TIMEOUT_MS: '300' }, async (draining) => {
      const running = await nextCallRunning();
      const request = postBatch(draining.url, {
        tool_uses: [{ id: 'a', name: 'diag_sleep', input: { ms: 30_000 } }],
      });
      await running();
      const signalled = Date.now();
      draining.child.kill('SIGTERM');
      const body = (await (await request).json()) as { tool_results: { content: string; is_error?: true }[] };
      expect(body.tool_results[0]).toMatchObject({
        is_error: true,
        content: 'Error: cancelled: the coordinator is shutting down',
      });
      // At the 300 ms drain bound, not when the 30 s call would end.
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(await draining.exited).toBe(0);
    });
  });
});

describe('a coordinator killed mid-batch', () => {
  it('a new one with the same id collects the results the workers wrote (promise 3)', async () => {
    await withOwnCoordinator({ TOOLQ_COORDINATOR_ID: 'coord-fixed' }, async (doomed) => {
      const running = await nextCallRunning();
      const request = postBatch(doomed.url, {
        batch_id: 'turn-42',
        tool_uses: [
          { id: 'a', name: 'diag_sleep', input: { ms: 600 } },
          { id: 'b', name: 'diag_echo', input: { value: 'kept' } },
          { id: 'c', name: 'not_a_tool', input: {} },
        ],
        timeout_ms: 5_000,
      }).catch((err: Error) => err);
      await running(); // mid-batch: the calls run on the worker
      doomed.child.kill('SIGKILL');
      expect(await request).toBeInstanceOf(Error);

      const successor = new Dispatcher({
        redisUrl: server.url,
        coordinatorId: 'coord-fixed',
        logger: testLogger(),
      });
      await successor.start();
      try {
        const result = await successor.collect('turn-42');
        expect(result?.toolResults).toEqual([
          { type: 'tool_result', tool_use_id: 'a', content: '{"slept_ms":600}' },
          { type: 'tool_result', tool_use_id: 'b', content: 'kept' },
          { type: 'tool_result', tool_use_id: 'c', content: 'Unknown tool: not_a_tool', is_error: true },
        ]);
        expect(await successor.collect('never-dispatched')).toBeUndefined();
        await expect(
          successor.dispatch([{ id: 'x', name: 'diag_echo', input: { value: 1 } }], { batchId: 'turn-42' }),
        ).rejects.toThrow(/batch turn-42 was dispatched already/);
      } finally {
        await successor.close();
      }
    });
  });

  it('GET /v1/tool-batches/:id collects over HTTP', async () => {
    const worker = await startWorkerProcess({ redisUrl: server.url });
    try {
      const res = await postBatch(coordinator.url, {
        batch_id: 'http-1',
        tool_uses: [{ id: 'a', name: 'diag_echo', input: { value: 'v' } }],
      });
      expect(res.status).toBe(200);
      const again = await fetch(`${coordinator.url}/v1/tool-batches/http-1`);
      expect(again.status).toBe(200);
      expect(((await again.json()) as { tool_results: unknown[] }).tool_results).toEqual([
        { type: 'tool_result', tool_use_id: 'a', content: 'v' },
      ]);
      const reused = await postBatch(coordinator.url, { batch_id: 'http-1', tool_uses: [] });
      expect(reused.status).toBe(409);
      expect((await fetch(`${coordinator.url}/v1/tool-batches/nope`)).status).toBe(404);
      expect((await fetch(`${coordinator.url}/v1/tool-batches/bad%20id`)).status).toBe(400);
    } finally {
      await worker.stop();
    }
  });
});

describe('a coordinator paused mid-batch (SIGSTOP: a long GC pause, CPU starvation)', () => {
  it('answers results written before their deadlines as results, not timeouts', async () => {
    await withOwnCoordinator({}, async (own) => {
      const redis = createRedis(server.url);
      const queue = new Queue('{default}', { connection: redis, prefix: 'toolq' });
      try {
        const running = await newActiveJobs(queue);
        const started = Date.now();
        const request = postBatch(own.url, {
          batch_id: 'paused-1',
          tool_uses: sleeps(5, 500),
          timeout_ms: 3_000,
        });
        // Stopped once its job runs on the worker, before any result can have been read.
        await running();
        own.child.kill('SIGSTOP');
        const owner = await readBatchOwner(redis, createKeys('toolq').batchName('default', 'paused-1'));
        const record = createKeys('toolq').batch(owner?.coordinatorId ?? '', owner?.uid ?? '');
        await waitFor('the five results', async () => (await redis.hlen(record)) >= 6); // meta + five results
        // Deliberately: every deadline passes while the coordinator is stopped.
        await letTimePass(Math.max(0, started + 3_500 - Date.now()));
        own.child.kill('SIGCONT');
        const res = await request;
        expect(res.status).toBe(200);
        const body = (await res.json()) as { tool_results: { content: string; is_error?: true }[] };
        expect(body.tool_results.map((r) => r.content)).toEqual(Array(5).fill('{"slept_ms":500}'));
      } finally {
        own.child.kill('SIGCONT');
        await queue.close();
        redis.disconnect();
      }
    });
  });
});
