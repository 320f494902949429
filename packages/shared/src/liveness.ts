/**
 * Worker liveness apart from the worker's event loop (docs/delivery.md, "How long a dead worker
 * takes to notice"). A thread of each worker process (worker/src/liveness) writes, every
 * heartbeat interval, the time of its beat and the last time the worker's main event loop ran.
 * A process SIGKILLed, frozen (SIGSTOP) or on a machine that is gone stops beating altogether; a
 * process whose event loop is only busy (a tool's synchronous loop, thousands of calls at once)
 * still beats from its thread, and only its loop time grows old. The dead-worker sweep tells the
 * two apart: the first is dead after `deadWorkerAfterMs`, the second after `stalledWorkerAfterMs`.
 */
import type { Keys } from './keys.ts';
import type { Redis } from './redis.ts';

export interface Liveness {
  /** Epoch ms of the thread's last beat. */
  beatAt: number;
  /** Epoch ms when the worker's main event loop last ran (as the thread last saw it). */
  loopAt: number;
}

export async function writeLiveness(redis: Redis, keys: Keys, workerId: string, at: Liveness): Promise<void> {
  await redis.hset(keys.liveness(), workerId, `${Math.round(at.beatAt)} ${Math.round(at.loopAt)}`);
}

export async function removeLiveness(redis: Redis, keys: Keys, workerId: string): Promise<void> {
  await redis.hdel(keys.liveness(), workerId);
}

/** Every worker's liveness (workers without a thread, older ones, have none). */
export async function readLiveness(redis: Redis, keys: Keys): Promise<Map<string, Liveness>> {
  const all = await redis.hgetall(keys.liveness());
  const out = new Map<string, Liveness>();
  for (const [id, raw] of Object.entries(all)) {
    const [beatAt, loopAt] = raw.split(' ').map(Number);
    if (Number.isFinite(beatAt) && Number.isFinite(loopAt)) out.set(id, { beatAt, loopAt } as Liveness);
  }
  return out;
}
