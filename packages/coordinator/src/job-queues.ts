/**
 * The BullMQ side of the coordinator: one Queue per route (a pool's shared queue, or one of its
 * lanes: see catalog.ts); a batch's calls grouped into jobs (a call alone, or a chunk of calls, so
 * that each live worker of a route fetches one job per batch instead of one per call);
 * enqueueing them, and removing them.
 */
import {
  type FailurePolicy,
  type JobChunk,
  type JobData,
  type Logger,
  MAX_CALLS_PER_JOB,
} from '@toolq/shared';
import { DEFAULTS, JOB_VERSION, type Keys, type Redis, toolOfRoute } from '@toolq/shared/internal';
import { type KeepJobs, Queue } from 'bullmq';
import { fairPriorities } from './flow/fair-share.ts';

export interface PlannedJob {
  /** The queue it goes to: a pool, or a lane of one. */
  queue: string;
  index: number;
  data: JobData;
}

/** One BullMQ job: the calls (batch indexes) it carries. */
export interface QueuedJob {
  queue: string;
  jobId: string;
  indexes: number[];
  data: JobData | JobChunk;
}

/** The id of the job that carries one call of a batch alone (not a re-run's: dispatch/lost-calls.ts). */
export function singleCallJobId(uid: string, index: number): string {
  return `${uid}.${index}`;
}

/** A call's job id: the reference's own, or, when it has none, that of the call's job of its own. */
export function jobIdOf(uid: string, index: number, ref: { jobId?: string }): string {
  return ref.jobId ?? singleCallJobId(uid, index);
}

/** The job of one call, as the contract in @toolq/shared defines it. */
export function buildJobData(input: {
  call: { tool: string; toolUseId: string; deadline: number; timeoutMs: number };
  input: unknown;
  reply: NonNullable<JobData['reply']>;
  options: {
    failurePolicy?: FailurePolicy;
    maxRetries?: number;
    app?: string;
    priority?: number;
    context?: Record<string, unknown>;
  };
}): JobData {
  const { call, options } = input;
  return {
    v: JOB_VERSION,
    tool: call.tool,
    input: input.input,
    toolUseId: call.toolUseId,
    deadline: call.deadline,
    timeoutMs: call.timeoutMs,
    failurePolicy: options.failurePolicy ?? 'continue',
    ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    enqueuedAt: Date.now(),
    ...(options.app !== undefined ? { app: options.app } : {}),
    // Only a priority other than the default travels (and only flow-controlled tools read it).
    ...(options.priority ? { priority: options.priority } : {}),
    ...(options.context !== undefined ? { context: options.context } : {}),
    reply: input.reply,
  };
}

/**
 * Groups a batch's calls into jobs: per queue, as many chunks as the queue has live workers (so the
 * calls still spread over the workers), at most MAX_CALLS_PER_JOB calls each.
 */
export function groupJobs(
  uid: string,
  planned: readonly PlannedJob[],
  liveWorkers: (queue: string) => number,
): QueuedJob[] {
  const byQueue = new Map<string, PlannedJob[]>();
  for (const job of planned) byQueue.set(job.queue, [...(byQueue.get(job.queue) ?? []), job]);
  const queued: QueuedJob[] = [];
  for (const [queue, jobs] of byQueue) {
    // A flow-controlled tool's calls are one job each: its cap and rate limit count jobs.
    const flow = toolOfRoute(queue) !== undefined;
    const chunks = flow
      ? jobs.length
      : Math.max(Math.min(jobs.length, liveWorkers(queue)), Math.ceil(jobs.length / MAX_CALLS_PER_JOB), 1);
    const size = Math.ceil(jobs.length / chunks);
    for (let start = 0, k = 0; start < jobs.length; start += size, k++) {
      const slice = jobs.slice(start, start + size);
      const [only] = slice;
      queued.push(
        slice.length === 1 && only
          ? { queue, jobId: singleCallJobId(uid, only.index), indexes: [only.index], data: only.data }
          : {
              queue,
              jobId: `${uid}.${queue}.c${k}`,
              indexes: slice.map((j) => j.index),
              data: { v: JOB_VERSION, chunk: slice.map((j) => j.data) },
            },
      );
    }
  }
  return queued;
}

/**
 * Failed jobs stay an hour (at most 1,000 a queue), as they always have: the evidence of what went
 * wrong, and the lost-call sweep leaves a call whose job failed to its deadline (lost-calls.ts).
 */
export const KEEP_FAILED = { age: 3600, count: 1000 } as const satisfies KeepJobs;

/**
 * What BullMQ keeps of a completed job: the admin page's recent history, bounded by age and count
 * per queue. Nothing else reads a completed job: results travel through the batch record, and a
 * call's completed job counts as gone (dispatch/lost-calls.ts). The worker drops a kept job's
 * caller context and cuts a large input when it completes it (worker/src/job-history.ts).
 */
export function keepCompleted(history: {
  jobHistoryMs?: number | undefined;
  jobHistoryCount?: number | undefined;
}): KeepJobs | true {
  const ms = history.jobHistoryMs ?? DEFAULTS.jobHistoryMs;
  const count = history.jobHistoryCount ?? DEFAULTS.jobHistoryCount;
  return ms > 0 && count > 0 ? { age: Math.ceil(ms / 1000), count } : true;
}

export class JobQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly keep: KeepJobs | true;

  constructor(
    private readonly options: {
      redis: Redis;
      keys: Keys;
      logger: Logger;
      history: Parameters<typeof keepCompleted>[0];
    },
  ) {
    this.keep = keepCompleted(options.history);
  }

  /** The BullMQ queue of a pool or lane; created on first use. */
  queueFor(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      const { redis, keys, logger } = this.options;
      queue = new Queue(keys.queueName(name), { connection: redis, prefix: keys.prefix });
      queue.on('error', (err) => logger.warn({ err: err.message, queue: name }, 'queue error'));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** One addBulk per queue. Resolves with the calls that could not be enqueued and why. */
  async enqueue(jobs: readonly QueuedJob[]): Promise<{ index: number; error: Error }[]> {
    const byQueue = new Map<string, QueuedJob[]>();
    for (const job of jobs) byQueue.set(job.queue, [...(byQueue.get(job.queue) ?? []), job]);
    const failures = await Promise.all(
      [...byQueue].map(async ([queue, poolJobs]) => {
        try {
          // Fair shares between apps: each call's priority is its fair-share tag (flow/fair-share.ts).
          const priorities = await fairPriorities(this.options.redis, this.options.keys, queue, poolJobs);
          const bulk = poolJobs.map(({ data, jobId }, i) => ({
            name: 'chunk' in data ? 'chunk' : data.tool,
            data,
            opts: {
              jobId,
              removeOnComplete: this.keep,
              removeOnFail: KEEP_FAILED,
              ...(priorities ? { priority: priorities[i] } : {}),
            },
          }));
          const [only] = bulk;
          // One job: add() skips the MULTI that addBulk wraps around its scripts.
          if (bulk.length === 1 && only) await this.queueFor(queue).add(only.name, only.data, only.opts);
          else await this.queueFor(queue).addBulk(bulk);
          return [];
        } catch (err) {
          return poolJobs.flatMap(({ indexes }) => indexes.map((index) => ({ index, error: err as Error })));
        }
      }),
    );
    return failures.flat();
  }

  /** Removes a job still waiting in its queue; a running one is locked and left to the cancel channel. */
  remove(queue: string, jobId: string): void {
    this.queueFor(queue)
      .remove(jobId)
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
