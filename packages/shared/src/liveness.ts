/**
 * Worker liveness apart from the worker's event loop (docs/delivery.md, "How long a dead worker
 * takes to notice"). A thread of each worker process (worker/src/liveness) writes, every
 * heartbeat interval, the time of its beat and the last time the worker's main event loop ran.
 * A process SIGKILLed, frozen (SIGSTOP) or on a machine that is gone stops beating altogether; a
 * process whose event loop is only busy (a tool's synchronous loop, thousands of calls at once)
 * still beats from its thread, and only its loop time grows old. The dead-worker sweep tells the
 * two apart: the first is dead after `deadWorkerAfterMs`, the second after `stalledWorkerAfterMs`.
 *
 * The entry also names the worker's BullMQ consumers (queue and BullMQ worker id): every lock
 * token a consumer takes a job under starts with its id, so a dead worker's jobs are found in
 * its queues' `active` lists even when it died before noting them (coordinator's unnoted-jobs.ts).
 */
import type { Keys } from './keys.ts';
import type { Redis } from './redis.ts';

export interface Liveness {
  /** Epoch ms of the thread's last beat. */
  beatAt: number;
  /** Epoch ms when the worker's main event loop last ran (as the thread last saw it). */
  loopAt: number;
  /** The worker's BullMQ consumers: queue (without hash-tag braces) → BullMQ worker id. */
  consumers?: ReadonlyMap<string, string>;
}

export async function writeLiveness(redis: Redis, keys: Keys, workerId: string, at: Liveness): Promise<void> {
  await redis.hset(keys.liveness(), workerId, formatLiveness(at));
}

/** `<beatAt> <loopAt> [<queue>=<BullMQ worker id> ...]`: a queue name may hold `=` (`tool=x`), an id does not. */
export function formatLiveness(at: Liveness): string {
  const consumers = [...(at.consumers ?? [])].map(([queue, id]) => ` ${queue}=${id}`).join('');
  return `${Math.round(at.beatAt)} ${Math.round(at.loopAt)}${consumers}`;
}

/** Undefined for an entry that is not one (no two times first). */
export function parseLiveness(raw: string): Liveness | undefined {
  const [beatAt, loopAt, ...rest] = raw.split(' ');
  const at = { beatAt: Number(beatAt), loopAt: Number(loopAt) };
  if (!Number.isFinite(at.beatAt) || !Number.isFinite(at.loopAt)) return undefined;
  const consumers = new Map<string, string>();
  for (const pair of rest) {
    const eq = pair.lastIndexOf('=');
    if (eq > 0 && eq < pair.length - 1) consumers.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return consumers.size > 0 ? { ...at, consumers } : at;
}

export async function removeLiveness(redis: Redis, keys: Keys, workerId: string): Promise<void> {
  await redis.hdel(keys.liveness(), workerId);
}

/** Every worker's liveness (workers without a thread, older ones, have none). */
export async function readLiveness(redis: Redis, keys: Keys): Promise<Map<string, Liveness>> {
  const all = await redis.hgetall(keys.liveness());
  const out = new Map<string, Liveness>();
  for (const [id, raw] of Object.entries(all)) {
    const at = parseLiveness(raw);
    if (at) out.set(id, at);
  }
  return out;
}
