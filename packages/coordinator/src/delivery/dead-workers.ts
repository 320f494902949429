/**
 * Dead workers noticed in seconds (docs/delivery.md). Each worker notes the jobs it runs, with
 * their BullMQ lock tokens, beside its heartbeat (@toolq/shared delivery.ts), and beats from a
 * thread of its own with the last time its event loop ran (@toolq/shared liveness.ts). A worker
 * is dead once its thread's beat is older than `deadAfterMs` (killed, frozen, machine gone), or
 * its event loop has not run for `stalledAfterMs` (a loop blocked for good); a worker without a
 * thread (an older one) once its heartbeat is older than `deadAfterMs`. Then one coordinator of
 * the fleet at a time (a lease in one key) settles each job the worker still holds under the same
 * lock token:
 * - an at-most-once call that started there (its start marker names the worker) and has no
 *   result is answered "outcome unknown" (is_error): it may or may not have taken effect;
 * - the job is then moved back to its queue under the dead worker's token, so another worker
 *   runs its other calls (at-least-once ones, and calls that never started) at once, with the
 *   same job data and so the same idempotency keys, instead of after BullMQ's lock expiry. The
 *   call answered "unknown" is skipped there (it has its result), and its marker would refuse it.
 * A job the worker took just before it died, too soon to be noted, is found in its queues'
 * `active` lists by its lock token (unnoted-jobs.ts) and settled the same way. A job whose lock is
 * gone or holds another token (it finished, or BullMQ recovered it) is left alone. A worker only
 * frozen past the bound is treated as dead: its late results are duplicates (the first answer
 * stays) and an at-least-once call may run twice at once.
 */
import { type CallResult, jobChunkSchema, jobDataSchema, type Logger } from '@toolq/shared';
import {
  type CoordinatorMetrics,
  type HeartbeatMemory,
  idempotencyKeyOf,
  interruptedResult,
  isCallStillWanted,
  type Keys,
  type Liveness,
  messages,
  type ParsedJobData,
  type Redis,
  readLiveness,
  readRunningJobs,
  readWorkers,
  startedBy,
  storeResult,
  type ToolSetMemory,
} from '@toolq/shared/internal';
import { Job } from 'bullmq';
import { DISPATCHER_DEFAULTS } from '../dispatch/options.ts';
import type { JobQueues } from '../job-queues.ts';
import { unnotedJobsOf } from './unnoted-jobs.ts';

export interface DeadWorkerSweepDeps {
  redis: Redis;
  keys: Keys;
  jobs: JobQueues;
  metrics: CoordinatorMetrics;
  logger: Logger;
  coordinatorId: string;
  /** A worker whose liveness thread (or, without one, heartbeat) is older than this is dead. */
  deadAfterMs: number;
  /** A worker whose thread beats but whose event loop has not run for this long is dead. */
  stalledAfterMs: number;
  /** How often the fleet looks (one coordinator at a time). */
  everyMs: number;
}

/** The sweep's settings from the Dispatcher's options. */
export function deadWorkerSettings(
  coordinatorId: string,
  options: { deadWorkerAfterMs?: number; stalledWorkerAfterMs?: number },
): Pick<DeadWorkerSweepDeps, 'coordinatorId' | 'deadAfterMs' | 'stalledAfterMs' | 'everyMs'> {
  const deadAfterMs = options.deadWorkerAfterMs ?? DISPATCHER_DEFAULTS.deadWorkerAfterMs;
  return {
    coordinatorId,
    deadAfterMs,
    // Never shorter than the bound for a worker that stopped altogether.
    stalledAfterMs: Math.max(
      options.stalledWorkerAfterMs ?? DISPATCHER_DEFAULTS.stalledWorkerAfterMs,
      deadAfterMs,
    ),
    everyMs: DISPATCHER_DEFAULTS.deadWorkerSweepMs,
  };
}

/** Deliveries of one job that may end in its worker's death; the same as the workers' maxStalledCount. */
const MAX_REDELIVERIES = 1;

function workersKeptDying(data: ParsedJobData, workerId: string): CallResult {
  return {
    ...interruptedResult(data, workerId, WHY),
    outcome: 'error',
    content: messages.error(
      `the call to ${data.tool} was not run again: the workers running it died ${MAX_REDELIVERIES + 1} times (does it crash its worker?)`,
    ),
  };
}

const WHY = 'its worker stopped answering (killed, or frozen past its heartbeat)';

export class DeadWorkerSweep {
  private lastRun = 0;
  private running = false;
  private readonly heartbeats: HeartbeatMemory = new Map();
  private readonly toolSets: ToolSetMemory = new Map();
  /** The newest liveness seen of each worker (a failover may turn it back in time, as heartbeats). */
  private readonly liveness = new Map<string, Liveness>();
  /** Dead workers found with nothing left to settle, by the beats they were found with. */
  private readonly settled = new Map<string, string>();

  constructor(private readonly deps: DeadWorkerSweepDeps) {}

  /** Called on the dispatcher's sweep tick; runs at most every `everyMs`, and on one coordinator. */
  async run(now = Date.now()): Promise<void> {
    const { redis, keys, coordinatorId, everyMs, deadAfterMs } = this.deps;
    if (this.running || now - this.lastRun < everyMs) return;
    this.lastRun = now;
    this.running = true;
    try {
      if ((await redis.set(keys.deadWorkerSweep(), coordinatorId, 'PX', everyMs, 'NX')) !== 'OK') return;
      const [{ live, stale }, liveness] = await Promise.all([
        readWorkers(redis, keys, now, this.heartbeats, this.toolSets),
        readLiveness(redis, keys),
      ]);
      for (const worker of [...live, ...stale]) {
        const seen = this.remember(worker.id, liveness.get(worker.id));
        const beat = this.heartbeats.get(worker.id) ?? worker.heartbeatAt;
        const dead = seen
          ? now - seen.beatAt > deadAfterMs || now - seen.loopAt > this.deps.stalledAfterMs
          : now - beat > deadAfterMs;
        const found = seen ? `${seen.beatAt} ${seen.loopAt}` : String(beat);
        if (!dead || this.settled.get(worker.id) === found) continue;
        const left = await this.settleWorker(worker.id, worker.pool, seen?.consumers);
        if (left === 0) this.settled.set(worker.id, found);
      }
      for (const id of this.settled.keys()) if (!this.heartbeats.has(id)) this.settled.delete(id);
      // Entries of workers gone from the catalog (pruned, or left without removing theirs).
      const gone = [...liveness.keys()].filter((id) => !this.heartbeats.has(id));
      for (const id of this.liveness.keys()) if (!liveness.has(id)) this.liveness.delete(id);
      if (gone.length > 0) await redis.hdel(keys.liveness(), ...gone);
    } finally {
      this.running = false;
    }
  }

  /** The newest of what was read now and what was seen before. */
  private remember(id: string, read: Liveness | undefined): Liveness | undefined {
    const before = this.liveness.get(id);
    if (!read) {
      // No thread (an older worker, or its entry lost with a failover): judged by its heartbeat.
      this.liveness.delete(id);
      return undefined;
    }
    const newest = before
      ? {
          beatAt: Math.max(read.beatAt, before.beatAt),
          loopAt: Math.max(read.loopAt, before.loopAt),
          ...((read.consumers ?? before.consumers) ? { consumers: read.consumers ?? before.consumers } : {}),
        }
      : read;
    this.liveness.set(id, newest);
    return newest;
  }

  /** Settles a dead worker's jobs; resolves with how many could not be (tried again next time). */
  private async settleWorker(
    workerId: string,
    pool: string,
    consumers: ReadonlyMap<string, string> | undefined,
  ): Promise<number> {
    const { redis, keys, logger } = this.deps;
    const noted = await readRunningJobs(redis, keys, workerId);
    const unnoted = consumers ? await unnotedJobsOf(redis, this.deps.jobs, consumers, noted) : [];
    const held = [...noted, ...unnoted];
    let left = 0;
    const tally = { unknown: 0, rerun: 0 };
    for (const job of held) {
      try {
        await this.settleJob(workerId, job, tally);
        await redis.hdel(keys.runningJobs(workerId), `${job.queue} ${job.jobId}`);
      } catch (err) {
        left++;
        logger.warn(
          { err: (err as Error).message, worker: workerId, job: job.jobId },
          'could not settle a dead worker’s job',
        );
      }
    }
    if (noted.length > 0 && left === 0) await redis.del(keys.runningJobs(workerId));
    if (tally.unknown + tally.rerun > 0) {
      this.deps.metrics.interrupted.inc({ pool, action: 'unknown' }, tally.unknown);
      this.deps.metrics.interrupted.inc({ pool, action: 'rerun' }, tally.rerun);
      logger.warn(
        { worker: workerId, unknown: tally.unknown, rerun: tally.rerun },
        'a worker stopped beating: its started at-most-once calls are answered "outcome unknown", its other calls run again',
      );
    }
    return left;
  }

  private async settleJob(
    workerId: string,
    held: { queue: string; jobId: string; token: string },
    tally: { unknown: number; rerun: number },
  ): Promise<void> {
    const { redis, keys, jobs } = this.deps;
    const queue = jobs.queueFor(held.queue);
    // Still under the dead worker's lock, else it finished or someone else has it now.
    if ((await redis.get(`${queue.toKey(held.jobId)}:lock`)) !== held.token) return;
    const job = await Job.fromId(queue, held.jobId);
    if (!job) return;
    // A job whose workers keep dying (a call that crashes its worker) is not handed to a third.
    const giveUp = job.stalledCounter >= MAX_REDELIVERIES;
    for (const data of callsOf(job.data)) {
      if (data.reply && !(await isCallStillWanted(redis, data.reply.batchKey, data.reply.index))) continue;
      const started = (await startedBy(redis, keys, idempotencyKeyOf(data, held.jobId))) === workerId;
      const target = data.reply ? { ...data.reply, deadline: data.deadline } : undefined;
      if (started && target) {
        await storeResult(redis, target, interruptedResult(data, workerId, WHY));
        tally.unknown++;
      } else if (giveUp && target) {
        await storeResult(redis, target, workersKeptDying(data, workerId));
      } else tally.rerun++;
    }
    if (giveUp) return; // BullMQ's stalled-job check fails it once the lock expires
    // Counted as BullMQ counts a stalled job, so that its own recovery's limit holds across both.
    await redis.hincrby(queue.toKey(held.jobId), 'stc', 1);
    await job.moveToWait(held.token);
  }
}

/** The calls of a job as the contract has them; malformed ones are left to the worker that takes it. */
function callsOf(raw: unknown): ParsedJobData[] {
  const chunk = jobChunkSchema.safeParse(raw);
  const calls: unknown[] = chunk.success ? chunk.data.chunk : [raw];
  return calls.flatMap((call) => {
    const parsed = jobDataSchema.safeParse(call);
    return parsed.success ? [parsed.data] : [];
  });
}
