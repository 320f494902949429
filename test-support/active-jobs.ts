/**
 * "The call runs on a worker now", seen in the queue: what a test waits for before it signals or
 * kills a process mid-call, instead of sleeping a guess.
 */
import type { Queue } from 'bullmq';
import { waitFor } from './wait-for.ts';

/**
 * Remembers the queue's active jobs now and returns a wait for `n` more: jobs a killed worker held
 * in an earlier test stay active (until BullMQ finds them stalled) and must not count.
 */
export async function newActiveJobs(queue: Queue): Promise<(n?: number) => Promise<void>> {
  const ids = async () => (await queue.getJobs(['active'])).map((job) => job.id);
  const before = new Set(await ids());
  return (n = 1) =>
    waitFor(
      `${n} more active job${n === 1 ? '' : 's'} in ${queue.name}`,
      async () => (await ids()).filter((id) => !before.has(id)).length >= n,
      { intervalMs: 20 },
    ).then(() => undefined);
}
