/**
 * A dead worker's jobs that it had not noted yet: a worker notes the jobs it runs in batches
 * (worker/src/delivery/guard.ts, every NOTE_EVERY_MS), so one that died just after taking a job
 * left no note of it. Such a job is still in its queue's `active` list, under a lock token its
 * consumer took it with, `<BullMQ worker id>:<n>`; the worker's liveness entry names its consumers
 * (@toolq/shared liveness.ts). Read only for a worker found dead, so it costs nothing meanwhile.
 */
import type { Redis } from '@toolq/shared/internal';
import type { JobQueues } from '../job-queues.ts';

/** Lock reads sent at once; an `active` list holds every running job of its queue, fleet-wide. */
const CHUNK = 500;

export interface HeldJob {
  /** The queue as coordinators name it (without hash-tag braces). */
  queue: string;
  jobId: string;
  /** The BullMQ lock token the dead worker held it under. */
  token: string;
}

export async function unnotedJobsOf(
  redis: Redis,
  queues: JobQueues,
  /** Queue → BullMQ worker id of each of the dead worker's consumers. */
  consumers: ReadonlyMap<string, string>,
  noted: readonly { queue: string; jobId: string }[],
): Promise<HeldJob[]> {
  const known = new Set(noted.map((job) => `${job.queue} ${job.jobId}`));
  const found: HeldJob[] = [];
  for (const [name, bullWorkerId] of consumers) {
    const queue = queues.queueFor(name);
    const active = await redis.lrange(queue.toKey('active'), 0, -1);
    const candidates = active.filter((jobId) => !known.has(`${name} ${jobId}`));
    for (let i = 0; i < candidates.length; i += CHUNK) {
      const chunk = candidates.slice(i, i + CHUNK);
      const tokens = await Promise.all(chunk.map((jobId) => redis.get(`${queue.toKey(jobId)}:lock`)));
      chunk.forEach((jobId, k) => {
        const token = tokens[k];
        if (token?.startsWith(`${bullWorkerId}:`)) found.push({ queue: name, jobId, token });
      });
    }
  }
  return found;
}
