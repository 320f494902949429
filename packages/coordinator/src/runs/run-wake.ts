/**
 * A parked run in Redis (run-park.ts says when a run parks): the owner's fenced `run_parked`
 * write, and the wake-up that whoever decides or expires one of its approvals sends.
 *
 * A wake-up must not be lost in the gap between the owner's last look at the approvals and its
 * job reaching BullMQ's delayed set (a promote before that finds the job still active and does
 * nothing). So a wake-up is two steps, a flag on the run's record, then a promote of its job if it
 * is delayed; and the owner clears the flag before its last look and reads it again once its job
 * is delayed, promoting the job itself when it is set. Either the waker's promote finds the job
 * delayed, or the owner's read comes after the flag.
 */
import { ToolqError } from '@toolq/shared';
import type { Redis } from '@toolq/shared/internal';
import type { Job, Queue } from 'bullmq';
import { runKeys } from './run-keys.ts';
import { withRunScripts } from './run-scripts.ts';

/** The owner parks the run (fenced like RunStore.write): `parked_at` and the `run_parked` event. */
export async function writeParked(
  redis: Redis,
  prefix: string,
  run: { runId: string; epoch: number },
  data: Record<string, unknown>,
): Promise<void> {
  const k = runKeys(prefix, run.runId);
  const now = Date.now();
  const json = JSON.stringify({ type: 'run_parked', at: now, ...data });
  const reply = await withRunScripts(redis).toolqRunPark(k.record, k.events, run.epoch, now, json);
  if (reply === -2)
    throw new ToolqError('LEASE_LOST', `run ${run.runId} was taken over by another coordinator`);
  if (reply === -1) throw new ToolqError('CANCELLED', `run ${run.runId} is no longer running`);
}

/** Before the owner's last look: a wake-up from now on is seen by wokenSinceCleared(). */
export async function clearWake(redis: Redis, prefix: string, runId: string): Promise<void> {
  await redis.hdel(runKeys(prefix, runId).record, 'wake');
}

export async function wokenSinceCleared(redis: Redis, prefix: string, runId: string): Promise<boolean> {
  return (await redis.hexists(runKeys(prefix, runId).record, 'wake')) === 1;
}

/**
 * Something the run may wait for happened (an approval decided or expired; the run cancelled):
 * the flag, then its job out of the delayed set, to whichever coordinator takes it first.
 */
export async function wakeRun(redis: Redis, queue: Queue, prefix: string, runId: string): Promise<void> {
  await withRunScripts(redis).toolqRunWake(runKeys(prefix, runId).record, Date.now());
  await promoteRun(queue, runId);
}

/** The run's job from the delayed set to the queue; false when it is not delayed (running, waiting, gone). */
export async function promoteRun(queue: Queue, runId: string): Promise<boolean> {
  const job = await queue.getJob(runId);
  if (!job) return false;
  try {
    await job.promote();
    return true;
  } catch {
    return false; // not delayed: it runs or waits for a slot already
  }
}

/**
 * The owner's last step of a park: the job (its lock, so the owner's lease and run slot) to the
 * delayed set, due at `wakeAt` (just after the soonest expiry) if nobody wakes it; then a wake-up
 * that came before the job got there is honoured (see the top). The caller then throws BullMQ's
 * DelayedError.
 */
export async function parkJob(
  parked: { job: Job; token: string | undefined; wakeAt: number },
  redis: Redis,
  queue: Queue,
  prefix: string,
): Promise<void> {
  const runId = parked.job.id ?? '';
  await parked.job.moveToDelayed(parked.wakeAt, parked.token);
  if (await wokenSinceCleared(redis, prefix, runId)) await promoteRun(queue, runId);
}
