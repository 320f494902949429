/** Catalog lookups and planned batches for the unit tests: what the Catalog would answer, no Redis. */
import type { BatchMeta, ToolSpec } from '@toolq/shared/internal';
import type { BarrierCall } from '../../src/barrier.ts';
import type { ToolLookup } from '../../src/catalog.ts';
import { planBatch, planJobs } from '../../src/dispatch/batch-plan.ts';
import type { JobRef } from '../../src/dispatch/job-ref.ts';
import type { KeptBatch } from '../../src/dispatch/lost-calls.ts';
import { JobRefs } from '../../src/dispatch/pending.ts';
import type { QueuedJob } from '../../src/job-queues.ts';

export const STARTED_AT = 1_700_000_000_000;
export const BATCH_KEY = 'toolq:batch:c1:uid-1';
export const STREAM_KEY = 'toolq:replies:c1';
/** Where a re-run writes the record and its workers notify. */
export const TARGET = { recordKey: BATCH_KEY, streamKey: STREAM_KEY };

export function spec(name: string, timeoutMs = 10_000, retry = false): ToolSpec {
  return {
    name,
    description: name,
    input_schema: { type: 'object' },
    timeoutMs,
    ...(retry ? { retry: { attempts: 3, backoffMs: 100 } } : {}),
  };
}

/** The spec of a tool that may not run twice (docs/delivery.md). */
export function atMostOnce(tool: ToolSpec): ToolSpec {
  return { ...tool, delivery: 'at-most-once' };
}

/** A tool live workers serve: in its pool's own queue unless `queue` names a lane. */
export function served(
  tool: ToolSpec,
  pool: string,
  workers: number,
  queue = pool,
): Extract<ToolLookup, { kind: 'ok' }> {
  return { kind: 'ok', spec: tool, pool, queue, workers };
}

export function uses(...names: string[]) {
  return names.map((name, i) => ({ id: `toolu_${i}`, name, input: { n: i } }));
}

/** planBatch then planJobs, as Dispatcher.prepare() runs them. */
export function plan(
  toolUses: readonly { id: string; name: string; input: unknown }[],
  lookups: readonly ToolLookup[],
  options: { timeoutMs?: number; maxRetries?: number; uid?: string } = {},
) {
  const uid = options.uid ?? 'uid-1';
  const { calls, meta, ttlMs } = planBatch({
    toolUses,
    lookups,
    startedAt: STARTED_AT,
    timeoutMs: options.timeoutMs,
  });
  // An unnamed batch of the default app, as prepare() names it before planning its jobs.
  meta.id = uid;
  meta.app = 'default';
  const jobs = planJobs({
    uid,
    calls,
    meta,
    lookups,
    toolUses,
    batchKey: BATCH_KEY,
    streamKey: STREAM_KEY,
    options: options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries },
    trace: undefined,
  });
  return { calls, meta, ttlMs, ...jobs };
}

/** The waiting batch (a Pending's fields) a planned batch becomes in Dispatcher.prepare(). */
export function keptBatch(
  planned: { meta: BatchMeta; calls: BarrierCall[]; queued: readonly QueuedJob[] },
  uid = 'uid-1',
): KeptBatch & { jobs: (JobRef | undefined)[] } {
  const { meta, calls, queued } = planned;
  return {
    barrier: { uid, calls },
    app: meta.app ?? 'default',
    batchName: meta.id ?? uid,
    startedAt: meta.createdAt,
    jobs: new JobRefs().of(uid, queued, calls.length, (index) => meta.calls[index]?.pool),
  };
}
