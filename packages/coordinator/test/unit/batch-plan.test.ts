/** Planning a batch: timeouts, the record, and grouping calls into jobs. Pure: no Redis. */
import { type JobChunk, type JobData, MAX_CALLS_PER_JOB } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { planBatch, planJobs } from '../../src/dispatch/batch-plan.ts';
import { atMostOnce, BATCH_KEY, plan, STARTED_AT, STREAM_KEY, served, spec, uses } from './plan-fixtures.ts';

const echo = spec('echo', 5_000);
const fetchTool = spec('fetch', 20_000, true);

function chunkOf(data: JobData | JobChunk): JobData[] {
  if (!('chunk' in data)) throw new Error('expected a chunk');
  return data.chunk;
}

describe('planBatch: timeouts and the record', () => {
  it('takes the smaller of the caller’s timeout and the tool’s, and 30 s for an unknown tool', () => {
    const lookups = [served(echo, 'p', 1), served(fetchTool, 'p', 1), { kind: 'unknown' } as const];
    const loose = planBatch({
      toolUses: uses('echo', 'fetch', 'nope'),
      lookups,
      startedAt: 0,
      timeoutMs: 8_000,
    });
    expect(loose.calls.map((c) => c.timeoutMs)).toEqual([5_000, 8_000, 8_000]);
    const none = planBatch({
      toolUses: uses('echo', 'fetch', 'nope'),
      lookups,
      startedAt: 0,
      timeoutMs: undefined,
    });
    expect(none.calls.map((c) => c.timeoutMs)).toEqual([5_000, 20_000, 30_000]);
  });

  it('sets each deadline from the start, and the record lives until the last one', () => {
    const { calls, ttlMs, meta } = plan(uses('echo', 'fetch'), [
      served(echo, 'p', 1),
      served(fetchTool, 'p', 1),
    ]);
    expect(calls.map((c) => c.deadline)).toEqual([STARTED_AT + 5_000, STARTED_AT + 20_000]);
    expect(ttlMs).toBe(20_000);
    expect(meta.createdAt).toBe(STARTED_AT);
    expect(meta.calls.map((c) => c.deadline)).toEqual([STARTED_AT + 5_000, STARTED_AT + 20_000]);
    expect(plan([], []).ttlMs).toBe(0);
  });

  it('answers an unknown tool and a tool without a live worker in the record, and sends them no job', () => {
    const { meta, queued } = plan(uses('nope', 'echo', 'echo'), [
      { kind: 'unknown' },
      { kind: 'no_worker', pool: 'gpu' },
      served(echo, 'p', 1),
    ]);
    expect(meta.calls[0]?.answer).toMatchObject({
      outcome: 'unknown_tool',
      isError: true,
      toolUseId: 'toolu_0',
    });
    expect(meta.calls[0]?.pool).toBeUndefined();
    expect(meta.calls[1]?.answer).toMatchObject({ outcome: 'error', isError: true });
    expect(meta.calls[1]?.answer?.content).toContain('gpu');
    expect(meta.calls[2]?.answer).toBeUndefined();
    expect(meta.calls[2]?.pool).toBe('p');
    expect(queued.flatMap((j) => j.indexes)).toEqual([2]);
    expect(meta.calls.map((c) => c.job)).toEqual([undefined, undefined, 'uid-1.2']);
  });
});

describe('planJobs: grouping calls into jobs', () => {
  it('sends each call in a job of its own when the queue has a live worker per call', () => {
    const { queued, meta } = plan(uses('echo', 'echo', 'echo'), Array(3).fill(served(echo, 'p', 5)));
    expect(queued.map((j) => j.jobId)).toEqual(['uid-1.0', 'uid-1.1', 'uid-1.2']);
    expect(queued.every((j) => !('chunk' in j.data))).toBe(true);
    expect(meta.calls.map((c) => c.job)).toEqual(['uid-1.0', 'uid-1.1', 'uid-1.2']);
  });

  it('groups the calls of a queue into one chunk per live worker', () => {
    const { queued, meta } = plan(
      uses('echo', 'echo', 'echo', 'echo', 'echo'),
      Array(5).fill(served(echo, 'p', 2)),
    );
    expect(queued.map((j) => [j.jobId, j.indexes])).toEqual([
      ['uid-1.p.c0', [0, 1, 2]],
      ['uid-1.p.c1', [3, 4]],
    ]);
    expect(chunkOf(queued[0]?.data ?? { v: 1, chunk: [] }).map((d) => d.toolUseId)).toEqual([
      'toolu_0',
      'toolu_1',
      'toolu_2',
    ]);
    expect(meta.calls.map((c) => c.job)).toEqual([
      'uid-1.p.c0',
      'uid-1.p.c0',
      'uid-1.p.c0',
      'uid-1.p.c1',
      'uid-1.p.c1',
    ]);
  });

  it(`puts at most ${MAX_CALLS_PER_JOB} calls in a job, however few the workers`, () => {
    const n = MAX_CALLS_PER_JOB * 2 + 1;
    const { queued } = plan(uses(...Array(n).fill('echo')), Array(n).fill(served(echo, 'p', 1)));
    expect(queued).toHaveLength(3);
    expect(queued.map((j) => j.indexes.length)).toEqual([11, 11, 11]);
    expect(queued.flatMap((j) => j.indexes)).toEqual([...Array(n).keys()]);
  });

  it('counts a queue’s workers as the most any of its lookups saw', () => {
    const { queued } = plan(uses('echo', 'echo', 'echo', 'echo'), [
      served(echo, 'p', 1),
      served(echo, 'p', 4),
      served(echo, 'p', 1),
      served(echo, 'p', 1),
    ]);
    expect(queued.map((j) => j.jobId)).toEqual(['uid-1.0', 'uid-1.1', 'uid-1.2', 'uid-1.3']);
  });

  it('fills each job with the call, its input, deadline and where to reply', () => {
    const { queued, calls } = plan(uses('fetch'), [served(fetchTool, 'p', 1)], {
      timeoutMs: 7_000,
      maxRetries: 1,
    });
    const data = queued[0]?.data as JobData;
    expect(data).toMatchObject({
      tool: 'fetch',
      toolUseId: 'toolu_0',
      input: { n: 0 },
      deadline: calls[0]?.deadline,
      timeoutMs: 7_000,
      failurePolicy: 'continue',
      maxRetries: 1,
      reply: { batchId: 'uid-1', index: 0, batchKey: BATCH_KEY, streamKey: STREAM_KEY },
    });
    expect(data.trace).toBeUndefined();
  });

  it('gives each job the trace context of its call when tracing is on', () => {
    const toolUses = uses('echo', 'echo');
    const lookups = [served(echo, 'p', 2), served(echo, 'p', 2)];
    const { calls, meta } = planBatch({ toolUses, lookups, startedAt: STARTED_AT, timeoutMs: undefined });
    const carrier = (index: number) => ({
      traceparent: `00-${'a'.repeat(32)}-${String(index).padStart(16, '0')}-01`,
    });
    const trace = { carrier };
    const { queued } = planJobs({
      uid: 'u',
      calls,
      meta,
      lookups,
      toolUses,
      batchKey: 'b',
      streamKey: 's',
      options: {},
      trace,
    });
    expect(queued.map((j) => (j.data as JobData).trace)).toEqual([carrier(0), carrier(1)]);
  });

  it('keeps the jobs of the calls of at-least-once tools (they may run twice), and only those', () => {
    const { mayRunTwice, queued } = plan(uses('echo', 'fetch', 'nope', 'fetch'), [
      served(atMostOnce(echo), 'p', 4),
      served(fetchTool, 'p', 4),
      { kind: 'unknown' },
      served(fetchTool, 'p', 4),
    ]);
    expect(queued).toHaveLength(3);
    expect(mayRunTwice.map((job) => job?.data.toolUseId)).toEqual([
      undefined,
      'toolu_1',
      undefined,
      'toolu_3',
    ]);
    // Without such calls nothing is kept to re-run: every lost call is answered is_error.
    const once = atMostOnce(echo);
    expect(plan(uses('echo', 'echo'), [served(once, 'p', 1), served(once, 'p', 1)]).mayRunTwice).toHaveLength(
      0,
    );
    // A tool that declares nothing is at-least-once: kept.
    expect(plan(uses('echo'), [served(echo, 'p', 1)]).mayRunTwice).toHaveLength(1);
  });
});
