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
 * What the dispatching coordinator keeps of a batch to re-run the calls Redis loses: the record as
 * written (the failover may have lost it too) and, of each call whose tool may run twice, its input
 * (it lived only in the lost job). Only batches with such calls keep it. Thousands of batches wait
 * at once and a re-run is rare, so both are kept as JSON strings (a one-byte string costs its
 * length; the job data's object graph cost ~1.4 KB per single-call batch, docs/benchmarks.md), and
 * everything else a job holds is rebuilt from the record: tool, tool_use id, deadline, timeout,
 * idempotency key, reply address.
 */
export class Rerunnable {
  /** Re-runs so far, by call index (allocated at the first re-run). */
  private reruns: number[] | undefined = undefined;
  private round = 0;
  /** A re-run is being written: the sweep leaves the batch alone meanwhile. */
  busy = false;
  /** The record (BatchMeta) as JSON: the string claimBatch writes, and after a re-run the rewritten one. */
  record: string;
  /** JSON of KeptCalls. */
  private readonly kept: string;
  /** This coordinator's reply stream (one string shared by every batch). */
  private readonly streamKey: string;

  constructor(
    private readonly uid: string,
    private readonly recordKey: string,
    /** By call index; undefined for calls whose tool may not run twice. */
    jobs: readonly (PlannedJob | undefined)[],
    meta: BatchMeta,
    /** Epoch ms until which the record is kept. */
    private readonly keepUntil: number,
  ) {
    this.record = JSON.stringify(meta);
    let streamKey = '';
    const kept: KeptCalls = { o: {}, c: [] };
    for (const job of jobs) {
      if (!job) continue;
      const { data } = job;
      streamKey = data.reply?.streamKey ?? streamKey;
      // One batch's calls share their options (dispatch()'s); each keeps its input and trace.
      kept.o = {
        failurePolicy: data.failurePolicy,
        ...(data.maxRetries !== undefined ? { maxRetries: data.maxRetries } : {}),
        ...(data.app !== undefined ? { app: data.app } : {}),
        ...(data.context !== undefined ? { context: data.context } : {}),
      };
      kept.c.push(data.trace ? [job.index, data.input, data.trace] : [job.index, data.input]);
    }
    this.kept = JSON.stringify(kept);
    this.streamKey = streamKey;
  }

  /** The record as it stands (a copy: parsed from what is kept). */
  meta(): BatchMeta {
    return JSON.parse(this.record) as BatchMeta;
  }

  /** Which of the lost calls may run again now. */
  eligible(lost: readonly number[], now: number): number[] {
    const meta = this.meta();
    const kept = new Set((JSON.parse(this.kept) as KeptCalls).c.map(([index]) => index));
    return lost.filter((index) => {
      const call = meta.calls[index];
      return (
        kept.has(index) &&
        call !== undefined &&
        call.deadline > now &&
        (this.reruns?.[index] ?? 0) < MAX_RERUNS_PER_CALL
      );
    });
  }

  /** The job data of kept call `index`, rebuilt as planJobs built it (batch-plan.ts). */
  private jobData(meta: BatchMeta, kept: KeptCalls, index: number): JobData | undefined {
    const call = meta.calls[index];
    const entry = kept.c.find(([i]) => i === index);
    if (!call || !entry) return undefined;
    const reply = { batchId: this.uid, index, batchKey: this.recordKey, streamKey: this.streamKey };
    const data = buildJobData({ call, input: entry[1], reply, options: kept.o });
    if (entry[2]) data.trace = entry[2];
    data.idempotencyKey = idempotencyKeyFor({
      app: kept.o.app ?? 'default',
      batchName: meta.id ?? this.uid,
      toolUseId: call.toolUseId,
    });
    return data;
  }

  /**
   * The jobs of a re-run, counted against each call's re-runs, and the record rewritten to name
   * them (the kept string: rerun() writes it). Each call goes where `route` sends its tool now; a
   * call whose tool no live worker serves is not re-run (nor counted).
   */
  plan(
    indexes: readonly number[],
    route: (tool: string) => ToolLookup,
  ): { queued: QueuedJob[]; failed: Map<number, string> } {
    const failed = new Map<number, string>();
    const planned: PlannedJob[] = [];
    const workersIn = new Map<string, number>();
    const meta = this.meta();
    const kept = JSON.parse(this.kept) as KeptCalls;
    for (const index of indexes) {
      const data = this.jobData(meta, kept, index);
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
    if (planned.length === 0) return { queued: [], failed };
    this.round++;
    const queued = groupJobs(`${this.uid}.r${this.round}`, planned, (queue) => workersIn.get(queue) ?? 1);
    for (const job of queued) {
      for (const index of job.indexes) {
        const call = meta.calls[index];
        if (!call) continue;
        call.job = job.jobId;
        if (job.queue !== call.pool) call.queue = job.queue;
        else delete call.queue;
      }
    }
    this.record = JSON.stringify(meta);
    return { queued, failed };
  }

  /**
   * Writes the record again (with the new jobs, keeping any results) and enqueues the calls anew,
   * each to the queue the catalog names for its tool now. Resolves with the new job of each call
   * re-run, and why the others could not be.
   */
  async rerun(
    deps: { redis: Redis; queues: JobQueues; catalog: Catalog },
    indexes: readonly number[],
  ): Promise<{ rerun: Map<number, JobAddress>; failed: Map<number, string> }> {
    const rerun = new Map<number, JobAddress>();
    const { queued, failed } = this.plan(indexes, (tool) => deps.catalog.lookupCached(tool));
    if (queued.length === 0) return { rerun, failed };
    try {
      // The record before the jobs: a worker writes a result only into a record that exists.
      await rewriteBatchMeta(
        deps.redis,
        this.recordKey,
        this.record,
        Math.max(this.keepUntil - Date.now(), 1_000),
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

/** Kept per batch: the calls' shared options, and [index, input, trace?] of each call that may run twice. */
interface KeptCalls {
  o: Parameters<typeof buildJobData>[0]['options'];
  c: [number, unknown, JobData['trace']?][];
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
