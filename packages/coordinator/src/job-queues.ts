/** The BullMQ side of the coordinator: one Queue per pool, enqueueing a batch and removing calls. */
import {
  CONTRACT_VERSION,
  type FailurePolicy,
  type JobData,
  type Keys,
  type Logger,
  type Redis,
} from '@toolq/shared';
import { Queue } from 'bullmq';

export interface PlannedJob {
  pool: string;
  index: number;
  data: JobData;
}

/** The job of one call, as the contract in @toolq/shared defines it. */
export function buildJobData(input: {
  call: { tool: string; toolUseId: string; deadline: number; timeoutMs: number };
  input: unknown;
  reply: NonNullable<JobData['reply']>;
  options: { failurePolicy?: FailurePolicy; maxRetries?: number };
}): JobData {
  const { call, options } = input;
  return {
    v: CONTRACT_VERSION,
    tool: call.tool,
    input: input.input,
    toolUseId: call.toolUseId,
    deadline: call.deadline,
    timeoutMs: call.timeoutMs,
    failurePolicy: options.failurePolicy ?? 'continue',
    ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    enqueuedAt: Date.now(),
    reply: input.reply,
  };
}

export function jobId(batchId: string, index: number): string {
  return `${batchId}.${index}`;
}

export class JobQueues {
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly options: { redis: Redis; keys: Keys; logger: Logger }) {}

  /** The BullMQ queue of a pool; created on first use. */
  queueFor(pool: string): Queue {
    let queue = this.queues.get(pool);
    if (!queue) {
      const { redis, keys, logger } = this.options;
      queue = new Queue(keys.queueName(pool), { connection: redis, prefix: keys.prefix });
      queue.on('error', (err) => logger.warn({ err: err.message, pool }, 'queue error'));
      this.queues.set(pool, queue);
    }
    return queue;
  }

  /** One addBulk per pool. Resolves with the calls that could not be enqueued and why. */
  async enqueue(batchId: string, jobs: readonly PlannedJob[]): Promise<{ index: number; error: Error }[]> {
    const byPool = new Map<string, PlannedJob[]>();
    for (const job of jobs) byPool.set(job.pool, [...(byPool.get(job.pool) ?? []), job]);
    const failures = await Promise.all(
      [...byPool].map(async ([pool, poolJobs]) => {
        try {
          await this.queueFor(pool).addBulk(
            poolJobs.map(({ data, index }) => ({
              name: data.tool,
              data,
              opts: {
                jobId: jobId(batchId, index),
                removeOnComplete: true,
                removeOnFail: { age: 3600, count: 1000 },
              },
            })),
          );
          return [];
        } catch (err) {
          return poolJobs.map(({ index }) => ({ index, error: err as Error }));
        }
      }),
    );
    return failures.flat();
  }

  /** Removes a call still waiting in its queue; a running one is locked and left to the cancel channel. */
  remove(batchId: string, index: number, pool: string): void {
    this.queueFor(pool)
      .remove(jobId(batchId, index))
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
