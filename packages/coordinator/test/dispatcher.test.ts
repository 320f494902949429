import { contractJsonSchemas } from '@toolq/shared';
import { createKeys, publishWorker, readBatchOwner, writeResult } from '@toolq/shared/internal';
import diagnostics from '@toolq/worker/diagnostics';
import { Job, Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import testTools from '../../../test-support/test-tools.ts';
import { type Interval, maxOverlap, waitFor } from '../../../test-support/wait-for.ts';

/** How late after its deadline a call may be answered: the deadline timer firing late on a loaded machine. */
const GRACE_MS = 5_000;
/** A call the test cancels: far longer than any test takes, so answering sooner proves it was cut short. */
const LONG_MS = 30_000;

const fleet = useInProcessFleet({
  workers: [
    {
      tools: [...diagnostics.filter((t) => t.name !== 'diag_crash'), ...testTools],
      concurrency: 64,
      maxResultBytes: 100_000,
    },
  ],
});

const call = (id: string, name: string, input: unknown = {}) => ({ id, name, input });

/** A pool that looks alive but whose worker never takes a job: only the test writes results. */
async function publishSilentWorker(): Promise<void> {
  await publishWorker(fleet.redis, createKeys('toolq'), {
    id: 'silent-worker',
    pool: 'silent',
    host: 'h',
    pid: 1,
    concurrency: 1,
    startedAt: Date.now(),
    heartbeatAt: Date.now(),
    tools: [{ name: 'silent_tool', description: 'd', input_schema: { type: 'object' }, timeoutMs: 10_000 }],
  });
  await fleet.dispatcher.catalog.refresh();
}

describe('order and content', () => {
  it('answers in the order of the tool_use blocks, ids matching, whatever finishes first', async () => {
    const result = await fleet.dispatcher.dispatch([
      call('toolu_a', 'diag_sleep', { ms: 150 }),
      call('toolu_b', 'diag_echo', { value: 'plain string' }),
      call('toolu_c', 'diag_echo', { value: { n: 1 } }),
      call('toolu_d', 'diag_sleep', { ms: 10 }),
    ]);
    expect(result.toolResults).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_a', content: '{"slept_ms":150}' },
      { type: 'tool_result', tool_use_id: 'toolu_b', content: 'plain string' },
      { type: 'tool_result', tool_use_id: 'toolu_c', content: '{"n":1}' },
      { type: 'tool_result', tool_use_id: 'toolu_d', content: '{"slept_ms":10}' },
    ]);
    expect(result.calls.map((c) => c.outcome)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(result.calls[0]?.worker).toBe(fleet.worker.id);
  });

  it('passes content blocks through', async () => {
    const { toolResults } = await fleet.dispatcher.dispatch([call('toolu_1', 'test_blocks')]);
    expect(toolResults[0]?.content).toEqual([
      { type: 'text', text: 'hello' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
    ]);
    expect(toolResults[0]?.is_error).toBeUndefined();
  });

  it('answers an empty batch at once', async () => {
    const result = await fleet.dispatcher.dispatch([]);
    expect(result.toolResults).toEqual([]);
  });

  it('rejects duplicate tool_use ids', async () => {
    await expect(fleet.dispatcher.dispatch([call('x', 'diag_echo'), call('x', 'diag_echo')])).rejects.toThrow(
      /duplicate id x/,
    );
  });
});

describe('error mapping (promise 2)', () => {
  it('maps each kind of failure to is_error with a message the model can act on', async () => {
    const result = await fleet.dispatcher.dispatch(
      [
        call('t1', 'diag_fail', { message: 'the API said no' }),
        call('t2', 'no_such_tool', {}),
        call('t3', 'diag_sleep', { ms: 'soon' }),
        call('t4', 'diag_sleep', { ms: LONG_MS }),
        call('t5', 'test_unserialisable', { kind: 'bigint' }),
        call('t6', 'test_unserialisable', { kind: 'circular' }),
        call('t7', 'test_huge', { bytes: 200_000 }),
        call('t8', 'test_hang', {}),
        call('t9', 'diag_echo', { value: 'fine' }),
      ],
      // Long enough for the quick calls to finish on a loaded machine.
      { timeoutMs: 3_000 },
    );
    const contents = result.toolResults.map((r) => [r.is_error ?? false, r.content]);
    expect(contents).toEqual([
      [true, 'Error: the API said no'],
      [true, 'Unknown tool: no_such_tool'],
      [true, 'Invalid input for diag_sleep: ms: Invalid input: expected number, received string'],
      [true, 'Tool diag_sleep timed out after 3s'],
      [
        true,
        expect.stringMatching(
          /^Error: the result of test_unserialisable cannot be serialised as JSON: .*BigInt/,
        ),
      ],
      [
        true,
        expect.stringMatching(
          /^Error: the result of test_unserialisable cannot be serialised as JSON: .*circular/,
        ),
      ],
      [true, 'Error: the result of test_huge is 200000 bytes, over the limit of 100000 bytes'],
      [true, 'Tool test_hang timed out after 3s'],
      [false, 'fine'],
    ]);
    expect(result.calls.map((c) => c.outcome)).toEqual([
      'error',
      'unknown_tool',
      'invalid_input',
      'timeout',
      'error',
      'error',
      'error',
      'timeout',
      'ok',
    ]);
    // Nothing waits past the deadline: neither the long sleep nor the call that ignores its signal.
    expect(result.wallMs).toBeLessThan(3_000 + GRACE_MS);
  });

  it('answers a tool whose workers are all gone at once, without a job', async () => {
    const keys = createKeys('toolq');
    await publishWorker(fleet.redis, keys, {
      id: 'gone-worker',
      pool: 'elsewhere',
      host: 'h',
      pid: 1,
      concurrency: 1,
      startedAt: Date.now() - 60_000,
      heartbeatAt: Date.now() - 30_000,
      tools: [{ name: 'orphan_tool', description: 'd', input_schema: { type: 'object' }, timeoutMs: 1000 }],
    });
    const started = Date.now();
    const result = await fleet.dispatcher.dispatch([call('t1', 'orphan_tool', {})], { timeoutMs: 20_000 });
    // At once, not at its 20 s deadline.
    expect(Date.now() - started).toBeLessThan(20_000 - GRACE_MS);
    expect(result.toolResults[0]).toMatchObject({
      is_error: true,
      content: expect.stringMatching(/no live worker serves tool orphan_tool/),
    });
    const queue = new Queue('{elsewhere}', { connection: fleet.redis, prefix: 'toolq' });
    expect(await queue.getJobCounts('wait', 'active')).toEqual({ wait: 0, active: 0 });
    await queue.close();
  });

  it('drops __proto__ keys at validation and pollutes nothing', async () => {
    const input = JSON.parse('{"obj": {"__proto__": {"polluted": true}, "a": 1}}');
    const { toolResults } = await fleet.dispatcher.dispatch([call('t1', 'test_keys', input)]);
    expect(JSON.parse(toolResults[0]?.content as string)).toEqual({ keys: ['a'], polluted: false });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('deadlines and parallelism', () => {
  it('runs calls at once: 8 × 400 ms all run on the worker at the same time', async () => {
    const result = await fleet.dispatcher.dispatch(
      Array.from({ length: 8 }, (_, i) => call(`t${i}`, 'diag_sleep', { ms: 400 })),
    );
    expect(result.calls.every((c) => c.outcome === 'ok')).toBe(true);
    // The worker's recorded start and finish of each call, in ms after the batch was enqueued.
    const runs: Interval[] = result.calls.map((c) => {
      const start = c.queueWaitMs ?? Number.NaN;
      return { start, end: start + (c.runMs ?? Number.NaN) };
    });
    expect(maxOverlap(runs)).toBe(8);
  });

  it('answers each call by its own deadline: fast ones succeed, slow ones time out', async () => {
    const started = Date.now();
    const result = await fleet.dispatcher.dispatch(
      [call('fast', 'diag_sleep', { ms: 50 }), call('slow', 'diag_sleep', { ms: LONG_MS })],
      { timeoutMs: 500 },
    );
    const elapsed = Date.now() - started;
    expect(result.calls.map((c) => c.outcome)).toEqual(['ok', 'timeout']);
    // At the deadline: not before it, and not when the slow call would have ended.
    expect(elapsed).toBeGreaterThanOrEqual(490);
    expect(elapsed).toBeLessThan(500 + GRACE_MS);
  });

  it('cancels the call on its worker when the deadline passes', async () => {
    await fleet.dispatcher.dispatch([call('slow', 'diag_sleep', { ms: LONG_MS })], { timeoutMs: 200 });
    // The worker stops the sleep instead of holding a slot for the whole 30 s.
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    try {
      await waitFor(
        'the worker to stop the call',
        async () => (await queue.getJobCounts('active')).active === 0,
        {
          timeoutMs: LONG_MS - GRACE_MS,
        },
      );
    } finally {
      await queue.close();
    }
  });

  it('cancels every unanswered call when the caller aborts', async () => {
    const controller = new AbortController();
    const pending = fleet.dispatcher.dispatch(
      [call('a', 'diag_sleep', { ms: LONG_MS }), call('b', 'diag_echo', { value: 1 })],
      { signal: controller.signal, batchId: 'caller-aborts' },
    );
    // The caller hangs up once b is answered (its result is in the batch record), a still running.
    const keys = createKeys('toolq');
    await waitFor('b to be answered', async () => {
      const owner = await readBatchOwner(fleet.redis, keys.batchName('default', 'caller-aborts'));
      return owner && (await fleet.redis.hexists(keys.batch(owner.coordinatorId, owner.uid), 'r:1')) === 1;
    });
    controller.abort(new Error('user hung up'));
    const result = await pending;
    expect(result.calls.map((c) => c.outcome)).toEqual(['cancelled', 'ok']);
    expect(result.toolResults[0]?.content).toMatch(/^Error: cancelled: the caller cancelled the batch/);
    expect(result.wallMs).toBeLessThan(LONG_MS);
  });
});

describe('failure policies', () => {
  it('continue: partial results, the others still succeed', async () => {
    const result = await fleet.dispatcher.dispatch(
      [call('a', 'diag_fail', { message: 'boom' }), call('b', 'diag_sleep', { ms: 200 })],
      { failurePolicy: 'continue' },
    );
    expect(result.calls.map((c) => c.outcome)).toEqual(['error', 'ok']);
  });

  it('abort: the first failure cancels the rest, each naming the failure', async () => {
    const result = await fleet.dispatcher.dispatch(
      [
        call('a', 'diag_sleep', { ms: LONG_MS }),
        call('b', 'diag_fail', { message: 'boom' }),
        call('c', 'diag_sleep', { ms: LONG_MS }),
      ],
      { failurePolicy: 'abort' },
    );
    expect(result.calls.map((c) => c.outcome)).toEqual(['cancelled', 'error', 'cancelled']);
    expect(result.toolResults[0]?.content).toBe(
      'Error: cancelled: another call in this batch failed: diag_fail (b) failed: Error: boom',
    );
    expect(result.wallMs).toBeLessThan(LONG_MS);
  });

  it('abort: an unknown tool cancels the batch before anything is enqueued', async () => {
    const result = await fleet.dispatcher.dispatch(
      [call('a', 'diag_sleep', { ms: 100 }), call('b', 'nope')],
      {
        failurePolicy: 'abort',
      },
    );
    expect(result.calls.map((c) => c.outcome)).toEqual(['cancelled', 'unknown_tool']);
  });

  it('retry: re-runs a tool that declares retries, with backoff, up to maxRetries', async () => {
    const ok = await fleet.dispatcher.dispatch([call('a', 'test_flaky', { succeed_on: 3 })], {
      failurePolicy: 'retry',
    });
    expect(ok.toolResults[0]).toEqual({ type: 'tool_result', tool_use_id: 'a', content: '{"attempt":3}' });
    expect(ok.calls[0]?.attempts).toBe(3);

    const capped = await fleet.dispatcher.dispatch([call('a', 'test_flaky', { succeed_on: 3 })], {
      failurePolicy: 'retry',
      maxRetries: 1,
    });
    expect(capped.toolResults[0]).toMatchObject({ is_error: true, content: 'Error: attempt 2 failed' });
  });

  it('does not retry under continue, nor a NonRetryableError, nor a tool without retry', async () => {
    const result = await fleet.dispatcher.dispatch(
      [
        call('a', 'test_flaky', { succeed_on: 2 }),
        call('b', 'test_fatal'),
        call('c', 'diag_fail', { message: 'x' }),
      ],
      { failurePolicy: 'continue' },
    );
    expect(result.calls.map((c) => c.attempts)).toEqual([1, 1, 1]);
    const retried = await fleet.dispatcher.dispatch(
      [call('b', 'test_fatal'), call('c', 'diag_fail', { message: 'x' })],
      {
        failurePolicy: 'retry',
      },
    );
    expect(retried.calls.map((c) => c.attempts)).toEqual([1, 1]);
    expect(retried.toolResults[0]?.content).toBe('Error: not worth retrying');
  });
});

describe('delivery', () => {
  it('drops and counts a result that arrives after its call was answered', async () => {
    const late = () => fleet.dispatcher.registry.getSingleMetricAsString('toolq_late_results_total');
    const before = Number(/} (\d+)/.exec(await late())?.[1] ?? 0);
    await publishSilentWorker();
    const result = await fleet.dispatcher.dispatch([call('a', 'silent_tool')], { timeoutMs: 150 });
    expect(result.calls[0]?.outcome).toBe('timeout');
    // A worker that never heard the cancellation writes its result after the deadline.
    const keys = createKeys('toolq');
    const target = {
      batchId: result.batchId,
      index: 0,
      batchKey: keys.batch(fleet.dispatcher.coordinatorId, result.batchId),
      streamKey: keys.replyStream(fleet.dispatcher.coordinatorId),
      deadline: Date.now(),
    };
    const lateResult = {
      v: 1 as const,
      toolUseId: 'a',
      tool: 'silent_tool',
      outcome: 'ok' as const,
      content: 'late',
      isError: false,
      attempts: 1,
    };
    expect(await writeResult(fleet.redis, target, lateResult)).toBe(true);
    const after = await waitFor('the late result to be counted', async () => {
      const n = Number(/} (\d+)/.exec(await late())?.[1] ?? 0);
      return n === before ? undefined : n;
    });
    expect(after).toBe(before + 1);
  });

  it('heals a lost notification: the sweep finds a result written without one', async () => {
    await publishSilentWorker();
    const pending = fleet.dispatcher.dispatch([call('a', 'silent_tool')], {
      timeoutMs: 10_000,
      batchId: 'sweep-heal',
    });
    const stored = {
      v: 1,
      toolUseId: 'a',
      tool: 'silent_tool',
      outcome: 'ok',
      content: 'healed',
      isError: false,
      attempts: 1,
    };
    const keys = createKeys('toolq');
    const owner = await waitFor('the batch to be recorded', () =>
      readBatchOwner(fleet.redis, keys.batchName('default', 'sweep-heal')),
    );
    expect(owner?.coordinatorId).toBe(fleet.dispatcher.coordinatorId);
    await fleet.redis.hset(
      keys.batch(fleet.dispatcher.coordinatorId, owner?.uid ?? ''),
      'r:0',
      JSON.stringify(stored),
    );
    const result = await pending;
    expect(result.toolResults[0]).toEqual({ type: 'tool_result', tool_use_id: 'a', content: 'healed' });
    // Healed by the sweep, not answered at its deadline.
    expect(result.wallMs).toBeLessThan(10_000);
  });

  it('a job delivered twice keeps its first result', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    // Copy every job of the batch as soon as it is enqueued: the same call delivered twice.
    const copies: Promise<unknown>[] = [];
    const onWaiting = async () => {
      const jobs = await queue.getJobs(['wait', 'active']);
      for (const job of jobs) {
        if (job.name === 'test_counted' && !String(job.id).endsWith('.dup')) {
          copies.push(queue.add(job.name, job.data, { jobId: `${job.id}.dup`, removeOnComplete: true }));
        }
      }
    };
    const skipped = async () => {
      const text = await fleet.worker.registry.getSingleMetricAsString('toolq_worker_skipped_jobs_total');
      return [...text.matchAll(/reason="(?:duplicate_delivery|already_answered)"[^}]*} (\d+)/g)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    const skippedBefore = await skipped();
    const pending = fleet.dispatcher.dispatch([call('a', 'test_counted', { ms: 300 })]);
    await waitFor('the job to be copied', async () => {
      await onWaiting();
      return copies.length > 0;
    });
    const result = await pending;
    await Promise.all(copies);
    expect(copies.length).toBe(1);
    // Wait for the copy to be skipped on the worker, then look at the batch record.
    await waitFor('the copy to be skipped', async () => (await skipped()) > skippedBefore);
    const first = JSON.parse(result.toolResults[0]?.content as string) as { run: number };
    expect(await skipped()).toBe(skippedBefore + 1);
    const stored = await fleet.redis.hget(
      createKeys('toolq').batch(fleet.dispatcher.coordinatorId, result.batchId),
      'r:0',
    );
    expect(JSON.parse(JSON.parse(stored as string).content)).toEqual(first);
    await queue.close();
  });
});

describe('jobs per batch', () => {
  it('sends a batch as one job per live worker (chunks of at most 16 calls), each call answered on its own', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    const seen = new Map<string, number>();
    const pending = fleet.dispatcher.dispatch(
      Array.from({ length: 20 }, (_, i) => call(`t${i}`, 'diag_sleep', { ms: 300 })),
    );
    // The jobs live at least as long as their 300 ms sleeps: looked at every 10 ms.
    await waitFor(
      'the jobs of the batch',
      async () => {
        for (const job of await queue.getJobs(['wait', 'active'])) {
          seen.set(String(job.id), ((job.data as { chunk?: unknown[] }).chunk ?? [job.data]).length);
        }
        return seen.size >= 2;
      },
      { intervalMs: 10 },
    );
    const result = await pending;
    await queue.close();
    expect(result.calls.every((c) => c.outcome === 'ok')).toBe(true);
    // One live worker: 20 calls → ceil(20 / 16) = 2 jobs of 10.
    expect([...seen.values()]).toEqual([10, 10]);
    expect([...seen.keys()].every((id) => id.startsWith(`${result.batchId}.default.c`))).toBe(true);
  });
});

describe('raw BullMQ producers', () => {
  it('runs a job added with a plain Queue and returns the result as the job return value', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    const now = Date.now();
    const job = await queue.add('diag_echo', {
      v: 1,
      tool: 'diag_echo',
      input: { value: 'hi' },
      toolUseId: 'toolu_raw',
      deadline: now + 10_000,
      timeoutMs: 10_000,
      enqueuedAt: now,
    });
    await waitFor('the job to complete', async () => (await job.getState()) === 'completed', {
      intervalMs: 20,
    });
    const done = await Job.fromId(queue, job.id as string);
    expect(done?.returnvalue).toMatchObject({
      toolUseId: 'toolu_raw',
      outcome: 'ok',
      content: 'hi',
      isError: false,
    });
    await queue.close();
  });

  it('runs a chunk job from a plain producer and returns the results in chunk order', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    const now = Date.now();
    const data = (toolUseId: string, value: string) => ({
      v: 1,
      tool: 'diag_echo',
      input: { value },
      toolUseId,
      deadline: now + 10_000,
      timeoutMs: 10_000,
      enqueuedAt: now,
    });
    const job = await queue.add('chunk', { v: 1, chunk: [data('t1', 'one'), data('t2', 'two')] });
    await waitFor('the job to complete', async () => (await job.getState()) === 'completed', {
      intervalMs: 20,
    });
    const done = await Job.fromId(queue, job.id as string);
    expect(done?.returnvalue).toMatchObject([
      { toolUseId: 't1', content: 'one' },
      { toolUseId: 't2', content: 'two' },
    ]);
    await queue.close();
  });

  it('fails a job that breaks the contract, saying why, without running anything', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    const job = await queue.add('diag_echo', { tool: 'diag_echo' });
    await waitFor('the job to fail', async () => (await job.getState()) === 'failed', { intervalMs: 20 });
    const failed = await Job.fromId(queue, job.id as string);
    expect(failed?.failedReason).toMatch(/does not follow toolq contract v1/);
    await queue.close();
  });

  it('publishes the contract as JSON Schema', () => {
    const schemas = contractJsonSchemas() as { jobData: { required: string[] } };
    expect(schemas.jobData.required).toEqual(
      expect.arrayContaining(['v', 'tool', 'toolUseId', 'deadline', 'timeoutMs', 'enqueuedAt']),
    );
  });
});
