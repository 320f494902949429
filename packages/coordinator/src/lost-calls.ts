/**
 * Calls a Redis failover (or a restart without persistence) lost. Replication is asynchronous: a promoted replica may lack a job the
 * old master accepted, or a batch record (the worker then refuses to write the result), or a
 * result. A worker writes a call's result before its job completes and is removed, so a call
 * whose job no longer exists and whose result is not in the record (read after the job check)
 * will never be answered by a worker: the sweep answers it at once instead of at its deadline.
 */
import type { JobQueues } from './job-queues.ts';

export interface JobRef {
  /** The queue the job waits in (a pool's, or a lane of it). */
  queue: string;
  jobId: string;
}

/** Indexes, among `pending`, whose job is gone from its queue. Ask before reading the record. */
export async function callsWithoutJob(
  queues: JobQueues,
  jobs: readonly (JobRef | undefined)[],
  pending: readonly number[],
): Promise<number[]> {
  const byJob = new Map<string, { ref: JobRef; indexes: number[] }>();
  for (const index of pending) {
    const ref = jobs[index];
    if (!ref) continue;
    const entry = byJob.get(ref.jobId) ?? { ref, indexes: [] };
    entry.indexes.push(index);
    byJob.set(ref.jobId, entry);
  }
  const gone = await Promise.all(
    [...byJob.values()].map(async ({ ref, indexes }) =>
      (await queues.queueFor(ref.queue).getJobState(ref.jobId)) === 'unknown' ? indexes : [],
    ),
  );
  return gone.flat();
}

export const LOST_CALL_MESSAGE =
  'the call was lost by Redis (a failover or a restart without persistence): neither its job nor its result is there any more';
