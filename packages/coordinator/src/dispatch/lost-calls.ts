/**
 * Calls a Redis failover (or a restart without persistence) lost. Replication is asynchronous: a
 * promoted replica may lack a job the old master accepted, or a batch record (the worker then
 * refuses to write the result), or a result. A worker writes a call's result before its job
 * completes, so a call whose job no longer exists or has completed (queues keep completed jobs a
 * while for the admin page) and whose result is not in the record (read after the job check) will
 * never be answered by a worker. A failed job (kept an hour, as always) is left to the call's
 * deadline: it may have failed at the stall limit, and a re-run would undo that limit. The sweep
 * re-runs such a call when its tool may run twice (at-least-once, the default: docs/delivery.md)
 * and its deadline has not passed, and answers the others `is_error` at once instead of at their
 * deadlines (an at-most-once call with outcome `unknown`: it may have run before Redis lost it).
 */
import type { JobData } from '@toolq/shared';
import {
  type BatchMeta,
  idempotencyKeyFor,
  messages,
  type Redis,
  rewriteBatchMeta,
} from '@toolq/shared/internal';
import type { BarrierCall } from '../barrier.ts';
import type { Catalog, ToolLookup } from '../catalog.ts';
import {
  buildJobData,
  groupJobs,
  type JobQueues,
  jobIdOf,
  type PlannedJob,
  type QueuedJob,
} from '../job-queues.ts';
import type { JobAddress, JobRef } from './job-ref.ts';

/** BullMQ's `unknown` (no such job), and `completed`, kept for the admin page's history (job-queues.ts). */
const GONE: ReadonlySet<string> = new Set(['unknown', 'completed']);

/** Indexes, among `pending`, whose job is gone from its queue or completed. Ask before reading the record. */
export async function callsWithoutJob(
  queues: JobQueues,
  /** The batch's uid. */
  uid: string,
  jobs: readonly (JobRef | undefined)[],
  pending: readonly number[],
): Promise<number[]> {
  const byJob = new Map<string, { queue: string; indexes: number[] }>();
  for (const index of pending) {
    const ref = jobs[index];
    if (!ref) continue;
    const jobId = jobIdOf(uid, index, ref);
    const entry = byJob.get(jobId) ?? { queue: ref.queue, indexes: [] };
    entry.indexes.push(index);
    byJob.set(jobId, entry);
  }
  const gone = await Promise.all(
    [...byJob].map(async ([jobId, { queue, indexes }]) =>
      GONE.has(await queues.queueFor(queue).getJobState(jobId)) ? indexes : [],
    ),
  );
  return gone.flat();
}

export const LOST_CALL_MESSAGE =
  'the call was lost by Redis (a failover or a restart without persistence): neither its job nor its result is there any more';

/** Times one call is re-run after Redis lost it; a failover that keeps losing it gets an error. */
export const MAX_RERUNS_PER_CALL = 2;

/**
 * What the dispatching coordinator keeps of a batch to re-run the calls Redis loses: of each call
 * whose tool may run twice, its input (it lived only in the lost job), and the few record fields
 * that its waiting batch does not hold (calls answered at dispatch, calls held for approval). Only
 * batches with such calls keep it. Thousands of batches wait at once and a re-run is rare, so what
 * is kept is one JSON string (a one-byte string costs its length; the job data's object graph cost
 * ~1.4 KB per single-call batch, docs/benchmarks.md), and everything else a job and the record hold
 * is rebuilt at the re-run from the waiting batch itself (KeptBatch): tool, tool_use id, deadline,
 * timeout, pool, queue, job, idempotency key, reply address.
 */
export class Rerunnable {
  /** Re-runs so far, by call index (allocated at the first re-run). */
  private reruns: number[] | undefined = undefined;
  private round = 0;
  /** A re-run is being written: the sweep leaves the batch alone meanwhile. */
  busy = false;

  /** `kept`: JSON of KeptCalls. */
  private constructor(private readonly kept: string) {}

  /** What to keep of a planned batch; undefined when none of its calls may run twice. */
  static keep(
    /** By call index; undefined for calls whose tool may not run twice. */
    jobs: readonly (PlannedJob | undefined)[],
    /** The record as planned: its calls without a job have fields no waiting batch holds. */
    meta: BatchMeta,
  ): Rerunnable | undefined {
    const kept: KeptCalls = { o: {}, c: [] };
    for (const job of jobs) {
      if (!job) continue;
      const { data } = job;
      // One batch's calls share their options (dispatch()'s); each keeps its input and trace.
      kept.o = {
        failurePolicy: data.failurePolicy,
        ...(data.maxRetries !== undefined ? { maxRetries: data.maxRetries } : {}),
        ...(data.app !== undefined ? { app: data.app } : {}),
        ...(data.context !== undefined ? { context: data.context } : {}),
      };
      kept.c.push(data.trace ? [job.index, data.input, data.trace] : [job.index, data.input]);
    }
    if (kept.c.length === 0) return undefined;
    meta.calls.forEach((call, index) => {
      if (call.job !== undefined) return; // rebuilt from the batch's job reference
      const { pool, queue, answer, approval } = call;
      kept.x ??= {};
      kept.x[index] = JSON.parse(JSON.stringify({ pool, queue, answer, approval })) as JobLessCall;
    });
    return new Rerunnable(JSON.stringify(kept));
  }

  /** Which of the lost calls may run again now. */
  eligible(batch: KeptBatch, lost: readonly number[], now: number): number[] {
    const kept = new Set((JSON.parse(this.kept) as KeptCalls).c.map(([index]) => index));
    return lost.filter((index) => {
      const call = batch.barrier.calls[index];
      return (
        kept.has(index) &&
        call !== undefined &&
        call.deadline > now &&
        (this.reruns?.[index] ?? 0) < MAX_RERUNS_PER_CALL
      );
    });
  }

  /**
   * The jobs of a re-run, counted against each call's re-runs, and the record rewritten to name
   * them (rerun() writes it). Each call goes where `route` sends its tool now; a call whose tool
   * no live worker serves is not re-run (nor counted).
   */
  plan(
    batch: KeptBatch,
    target: RecordTarget,
    indexes: readonly number[],
    route: (tool: string) => ToolLookup,
  ): { queued: QueuedJob[]; failed: Map<number, string>; record: BatchMeta } {
    const failed = new Map<number, string>();
    const planned: PlannedJob[] = [];
    const workersIn = new Map<string, number>();
    const kept = JSON.parse(this.kept) as KeptCalls;
    const record = recordOf(batch, kept.x);
    for (const index of indexes) {
      const data = jobData(batch, target, record, kept, index);
      const lookup = data ? route(data.tool) : undefined;
      if (!data || lookup?.kind !== 'ok') {
        failed.set(index, 'and no live worker serves its tool now');
        continue;
      }
      workersIn.set(lookup.queue, Math.max(workersIn.get(lookup.queue) ?? 0, lookup.workers));
      planned.push({ queue: lookup.queue, index, data });
      this.reruns ??= [];
      this.reruns[index] = (this.reruns[index] ?? 0) + 1;
    }
    if (planned.length === 0) return { queued: [], failed, record };
    this.round++;
    const uid = batch.barrier.uid;
    const queued = groupJobs(`${uid}.r${this.round}`, planned, (queue) => workersIn.get(queue) ?? 1);
    for (const job of queued) {
      for (const index of job.indexes) {
        const call = record.calls[index];
        if (!call) continue;
        call.job = job.jobId;
        if (job.queue !== call.pool) call.queue = job.queue;
        else delete call.queue;
      }
    }
    return { queued, failed, record };
  }

  /**
   * Writes the record again (with the new jobs, keeping any results) and enqueues the calls anew,
   * each to the queue the catalog names for its tool now. Resolves with the new job of each call
   * re-run, and why the others could not be.
   */
  async rerun(
    deps: { redis: Redis; queues: JobQueues; catalog: Catalog },
    batch: KeptBatch,
    target: RecordTarget & {
      /** How long a record outlives the batch's last deadline (the dispatch's batchRetentionMs). */
      retentionMs: number;
    },
    indexes: readonly number[],
  ): Promise<{ rerun: Map<number, JobAddress>; failed: Map<number, string> }> {
    const rerun = new Map<number, JobAddress>();
    const plan = this.plan(batch, target, indexes, (tool) => deps.catalog.lookupCached(tool));
    const { queued, failed } = plan;
    if (queued.length === 0) return { rerun, failed };
    // As long as the dispatch kept it: from its start to its last deadline, then the retention.
    const lastDeadline = Math.max(batch.startedAt, ...batch.barrier.calls.map((c) => c.deadline));
    try {
      // The record before the jobs: a worker writes a result only into a record that exists.
      await rewriteBatchMeta(
        deps.redis,
        target.recordKey,
        JSON.stringify(plan.record),
        Math.max(lastDeadline + target.retentionMs - Date.now(), 1_000),
      );
    } catch (err) {
      for (const { indexes: calls } of queued)
        for (const index of calls) failed.set(index, `and could not be re-run: ${(err as Error).message}`);
      return { rerun, failed };
    }
    const failures = new Map(
      (await deps.queues.enqueue(queued)).map(({ index, error }) => [index, error.message] as const),
    );
    for (const job of queued) {
      const ref = { queue: job.queue, jobId: job.jobId };
      for (const index of job.indexes) {
        const error = failures.get(index);
        if (error === undefined) rerun.set(index, ref);
        else failed.set(index, `and could not be re-run: ${error}`);
      }
    }
    return { rerun, failed };
  }
}

/** What a re-run reads of the waiting batch (a Pending): the record and the jobs are rebuilt from it. */
export interface KeptBatch {
  readonly barrier: { readonly uid: string; readonly calls: readonly BarrierCall[] };
  readonly app: string;
  /** The record's `id`. */
  readonly batchName: string;
  /** The record's `createdAt`. */
  readonly startedAt: number;
  /** Where each call's job is now (a re-run replaces a call's reference). */
  readonly jobs: readonly (JobRef | undefined)[];
}

/** Where a batch's record and its workers' notifications go. */
export interface RecordTarget {
  recordKey: string;
  /** This coordinator's reply stream. */
  streamKey: string;
}

type RecordCall = BatchMeta['calls'][number];
/** The record fields of a call that has no job (answered at dispatch, or held for approval). */
type JobLessCall = Pick<RecordCall, 'pool' | 'queue' | 'answer' | 'approval'>;

/** Kept per batch: the calls' shared options, [index, input, trace?] of each call that may run twice, and the job-less calls' record fields. */
interface KeptCalls {
  o: Parameters<typeof buildJobData>[0]['options'];
  c: [number, unknown, JobData['trace']?][];
  x?: Record<number, JobLessCall>;
}

/** The batch's record as the dispatch wrote it, with each call's job as it is now. */
export function recordOf(batch: KeptBatch, jobLess: KeptCalls['x']): BatchMeta {
  const { uid, calls } = batch.barrier;
  return {
    createdAt: batch.startedAt,
    id: batch.batchName,
    app: batch.app,
    calls: calls.map(({ toolUseId, tool, deadline, timeoutMs }, index): RecordCall => {
      const call = { toolUseId, tool, deadline, timeoutMs };
      const ref = batch.jobs[index];
      if (!ref) return { ...call, ...jobLess?.[index] };
      const queue = ref.queue !== ref.pool ? { queue: ref.queue } : {};
      return { ...call, pool: ref.pool, ...queue, job: jobIdOf(uid, index, ref) };
    }),
  };
}

/** The job data of kept call `index`, rebuilt as planJobs built it (batch-plan.ts). */
function jobData(
  batch: KeptBatch,
  target: RecordTarget,
  record: BatchMeta,
  kept: KeptCalls,
  index: number,
): JobData | undefined {
  const call = record.calls[index];
  const entry = kept.c.find(([i]) => i === index);
  if (!call || !entry) return undefined;
  const reply = {
    batchId: batch.barrier.uid,
    index,
    batchKey: target.recordKey,
    streamKey: target.streamKey,
  };
  const data = buildJobData({ call, input: entry[1], reply, options: kept.o });
  if (entry[2]) data.trace = entry[2];
  data.idempotencyKey = idempotencyKeyFor({
    app: kept.o.app ?? 'default',
    batchName: batch.batchName,
    toolUseId: call.toolUseId,
  });
  return data;
}

/** The is_error answer of a lost call that is not re-run: why, when a re-run was tried and failed. */
export function lostCallMessage(whyNotRerun: string | undefined): string {
  return messages.error(whyNotRerun ? `${LOST_CALL_MESSAGE}, ${whyNotRerun}` : LOST_CALL_MESSAGE);
}

/**
 * For a batch collected from another coordinator's record (whose owner may be re-running a lost
 * call, and writes the new job into the record first): the calls that are lost for sure. A call
 * whose record names another job than `jobs` does is followed there (`jobs` and `since` are
 * updated) and not lost; the others are lost once they have looked lost for `graceMs`, counted
 * from their first sighting in `since`.
 */
export function lostForSure(input: {
  /** The batch's uid. */
  uid: string;
  lost: readonly number[];
  /** The record's calls, as read now (undefined: no record). */
  recorded: BatchMeta['calls'] | undefined;
  /** The batch's job references, by call index. */
  jobs: (JobRef | undefined)[];
  /** By call index: epoch ms when the call first looked lost. */
  since: Map<number, number>;
  now: number;
  graceMs: number;
}): number[] {
  const { uid, recorded, jobs, since, now } = input;
  const sure: number[] = [];
  for (const index of input.lost) {
    const call = recorded?.[index];
    const ref = jobs[index];
    if (call?.job && ref && call.job !== jobIdOf(uid, index, ref)) {
      jobs[index] = { pool: ref.pool, queue: call.queue ?? call.pool ?? ref.queue, jobId: call.job };
      since.delete(index);
      continue;
    }
    const first = since.get(index) ?? now;
    since.set(index, first);
    if (now - first >= input.graceMs) sure.push(index);
  }
  return sure;
}
