/**
 * The usual hand-written barrier on plain BullMQ: `queue.addBulk` the batch, then
 * `job.waitUntilFinished(queueEvents, timeout)` per job and `Promise.all` them. It is used the
 * way a naive user would: the first batch is dispatched right after `new QueueEvents(...)`,
 * without waiting for it to be listening. Jobs are kept after completion (BullMQ's default), so
 * `waitUntilFinished`'s own "already finished?" check can see them.
 */
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { PLAIN_PREFIX, PLAIN_QUEUE } from './processes.ts';

export interface PlainCall {
  name: string;
  input: unknown;
}

export interface PlainBatchResult {
  /** performance.now() ms from addBulk to the last answer (or timeout). */
  wallMs: number;
  /** Largest run time a worker reported for a call of the batch. */
  slowestRunMs: number;
  /** Sum of the run times the workers reported (what running them one after another would take). */
  sumRunMs: number;
  /** Calls the barrier never heard about within the timeout. */
  lost: number;
  /** Calls answered with an error (a failed job, or BullMQ's "missing key" for a job it removed). */
  errors: number;
  lostJobIds: string[];
}

interface PlainReturn {
  value: unknown;
  runMs: number;
}

export class PlainBarrier {
  readonly queue: Queue;
  readonly events: QueueEvents;
  private readonly connection: Redis;
  private readonly eventsConnection: Redis;

  constructor(redisUrl: string) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.eventsConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    for (const c of [this.connection, this.eventsConnection]) c.on('error', () => undefined);
    this.queue = new Queue(PLAIN_QUEUE, { connection: this.connection, prefix: PLAIN_PREFIX });
    // QueueEvents needs a blocking connection of its own.
    this.events = new QueueEvents(PLAIN_QUEUE, {
      connection: this.eventsConnection,
      prefix: PLAIN_PREFIX,
    });
    this.queue.on('error', () => undefined);
    this.queue.setMaxListeners(0);
    this.events.on('error', () => undefined);
  }

  async dispatch(calls: readonly PlainCall[], timeoutMs: number): Promise<PlainBatchResult> {
    const t0 = performance.now();
    const jobs = await this.queue.addBulk(calls.map((c) => ({ name: c.name, data: c.input })));
    const settled = await Promise.allSettled(
      jobs.map((job) => job.waitUntilFinished(this.events, timeoutMs) as Promise<PlainReturn>),
    );
    const wallMs = performance.now() - t0;
    let slowestRunMs = 0;
    let sumRunMs = 0;
    let lost = 0;
    let errors = 0;
    const lostJobIds: string[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        slowestRunMs = Math.max(slowestRunMs, s.value.runMs);
        sumRunMs += s.value.runMs;
      } else if (String((s.reason as Error)?.message).includes('timed out before finishing')) {
        lost++;
        lostJobIds.push(String(jobs[i]?.id));
      } else errors++;
    });
    return { wallMs, slowestRunMs, sumRunMs, lost, errors, lostJobIds };
  }

  /** How many of these jobs a worker did complete (a lost completion, not a lost job). */
  async countCompleted(jobIds: readonly string[]): Promise<number> {
    let completed = 0;
    for (const id of jobIds) if ((await this.queue.getJobState(id)) === 'completed') completed++;
    return completed;
  }

  async close(): Promise<void> {
    await this.events.close().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    this.connection.disconnect();
    this.eventsConnection.disconnect();
  }
}

/**
 * Raw BullMQ throughput: `total` no-op jobs added in chunks of `chunk` (all chunks at once), jobs
 * removed on completion, nobody listening for results. Done when the queue has no waiting or
 * active job left, seen by polling the queue's lists every few milliseconds.
 */
export async function rawBullmqRun(
  redisUrl: string,
  total: number,
  chunk: number,
): Promise<{ elapsedMs: number; completed: number }> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const queue = new Queue(PLAIN_QUEUE, { connection, prefix: PLAIN_PREFIX });
  queue.on('error', () => undefined);
  await queue.waitUntilReady();
  const key = (k: string) => `${PLAIN_PREFIX}:${PLAIN_QUEUE}:${k}`;
  const remaining = async () => {
    const res = await connection
      .multi()
      .llen(key('wait'))
      .llen(key('active'))
      .zcard(key('prioritized'))
      .zcard(key('delayed'))
      .exec();
    return (res ?? []).reduce((n, [, v]) => n + Number(v ?? 0), 0);
  };
  try {
    const failedBefore = await connection.zcard(key('failed'));
    const t0 = performance.now();
    const adds: Promise<unknown>[] = [];
    for (let start = 0; start < total; start += chunk) {
      const size = Math.min(chunk, total - start);
      adds.push(
        queue.addBulk(
          Array.from({ length: size }, (_, i) => ({
            name: 'diag_echo',
            data: { value: start + i },
            opts: { removeOnComplete: true },
          })),
        ),
      );
    }
    await Promise.all(adds);
    while ((await remaining()) > 0) await sleep(5);
    const elapsedMs = performance.now() - t0;
    const failed = (await connection.zcard(key('failed'))) - failedBefore;
    return { elapsedMs, completed: total - failed };
  } finally {
    await queue.close().catch(() => undefined);
    connection.disconnect();
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
