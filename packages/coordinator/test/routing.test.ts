import diagnostics from '@toolq/worker/diagnostics';
import { Job, Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import testTools from '../../../test-support/test-tools.ts';

const fleet = useInProcessFleet({
  workers: [{ tools: diagnostics.filter((t) => t.name !== 'diag_crash') }, { tools: testTools }],
});

describe('routing by tool within a pool', () => {
  it('sends each call only to workers that serve its tool', async () => {
    expect(fleet.dispatcher.catalog.liveWorkers().map((w) => w.pool)).toEqual(['default', 'default']);
    for (let round = 0; round < 5; round++) {
      const uses: { id: string; name: string; input: unknown }[] = Array.from({ length: 10 }, (_, i) => ({
        id: `e${i}`,
        name: 'diag_echo',
        input: { value: i },
      }));
      uses.push({ id: 'blocks', name: 'test_blocks', input: {} });
      const result = await fleet.dispatcher.dispatch(uses, { timeoutMs: 5_000 });
      expect(result.calls.map((c) => c.outcome)).toEqual(Array(11).fill('ok'));
      expect(new Set(result.calls.slice(0, 10).map((c) => c.worker))).toEqual(new Set([fleet.worker.id]));
      expect(result.calls[10]?.worker).toBe(fleet.workers[1]?.id);
      // Metrics keep the pool, never the lane.
      expect(new Set(result.calls.map((c) => c.pool))).toEqual(new Set(['default']));
    }
  });

  it('a worker that receives a call for a tool it lacks gives it back to one that has it', async () => {
    // A plain producer knows only the pool's queue, which both workers consume.
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    try {
      const jobs = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          queue.add('diag_echo', {
            v: 1,
            tool: 'diag_echo',
            input: { value: `plain ${i}` },
            toolUseId: `p${i}`,
            deadline: Date.now() + 10_000,
            timeoutMs: 10_000,
            enqueuedAt: Date.now(),
          }),
        ),
      );
      const results = await Promise.all(jobs.map((job) => finished(queue, job.id ?? '')));
      for (const [i, r] of results.entries()) {
        expect(r).toMatchObject({ outcome: 'ok', content: `plain ${i}`, worker: fleet.worker.id });
      }
    } finally {
      await queue.close();
    }
  });

  it('a tool no live worker of the pool serves is still "Unknown tool" for a plain producer', async () => {
    const queue = new Queue('{default}', { connection: fleet.redis, prefix: 'toolq' });
    try {
      const job = await queue.add('nope', {
        v: 1,
        tool: 'no_such_tool',
        input: {},
        toolUseId: 'u',
        deadline: Date.now() + 10_000,
        timeoutMs: 10_000,
        enqueuedAt: Date.now(),
      });
      expect(await finished(queue, job.id ?? '')).toMatchObject({
        outcome: 'unknown_tool',
        content: 'Unknown tool: no_such_tool',
      });
    } finally {
      await queue.close();
    }
  });
});

async function finished(queue: Queue, jobId: string): Promise<unknown> {
  const until = Date.now() + 8_000;
  while (Date.now() < until) {
    const job = await Job.fromId(queue, jobId);
    if (job?.finishedOn && job.returnvalue) return job.returnvalue;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`job ${jobId} did not finish`);
}
