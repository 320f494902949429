/**
 * The catalog of live workers and the tools they serve: each worker writes its entry on a
 * heartbeat; readers keep only entries whose heartbeat is recent, so a killed worker drops out
 * without anyone cleaning up after it.
 */
import { z } from 'zod';
import { type ToolSpec, toolSpecSchema, type WorkerInfo, workerInfoSchema } from './contract.ts';
import { parseJsonAs } from './json.ts';
import type { Keys } from './keys.ts';
import type { Redis } from './redis.ts';

export const HEARTBEAT_INTERVAL_MS = 2_000;
/** A worker whose last heartbeat is older than this is treated as gone. */
export const WORKER_STALE_AFTER_MS = 3 * HEARTBEAT_INTERVAL_MS + 1_000;
/** Entries this old are deleted by readers, so the hash does not grow with every restart. */
const PRUNE_AFTER_MS = 3600_000;

export async function publishWorker(redis: Redis, keys: Keys, info: WorkerInfo): Promise<void> {
  await redis.hset(keys.workers(), info.id, JSON.stringify(info));
}

export async function unpublishWorker(redis: Redis, keys: Keys, workerId: string): Promise<void> {
  await redis.hdel(keys.workers(), workerId);
}

export interface WorkerSnapshot {
  /** Heartbeat seen within WORKER_STALE_AFTER_MS. */
  live: WorkerInfo[];
  /** Seen within the last hour but not lately: their tools exist but have no live worker. */
  stale: WorkerInfo[];
}

/**
 * The newest heartbeat a reader has seen of each worker. A failover to a replica that missed the
 * latest beats turns every heartbeat back in time at once (a graceful Sentinel failover lets the
 * old master take writes for seconds after the promotion, then drops them): without a memory,
 * every live worker looked gone until its next beat reached the new master, and calls were
 * answered "no live worker" for a second or two (measured: 76–145 of 1,404 calls).
 */
export type HeartbeatMemory = Map<string, number>;

export async function readWorkers(
  redis: Redis,
  keys: Keys,
  now = Date.now(),
  memory?: HeartbeatMemory,
): Promise<WorkerSnapshot> {
  const all = await redis.hgetall(keys.workers());
  const live: WorkerInfo[] = [];
  const stale: WorkerInfo[] = [];
  const prune: string[] = [];
  for (const [id, raw] of Object.entries(all)) {
    const info = parseJsonAs(workerInfoSchema, raw);
    if (!info) {
      prune.push(id);
      continue;
    }
    const heartbeatAt = Math.max(info.heartbeatAt, memory?.get(id) ?? 0);
    memory?.set(id, heartbeatAt);
    const age = now - heartbeatAt;
    if (age <= WORKER_STALE_AFTER_MS) live.push({ ...info, heartbeatAt });
    else if (age > PRUNE_AFTER_MS) prune.push(id);
    else stale.push(info);
  }
  // A worker that left (or was pruned) is forgotten: the memory never outgrows the catalog.
  if (memory) for (const id of memory.keys()) if (!(id in all) || prune.includes(id)) memory.delete(id);
  if (prune.length > 0) await redis.hdel(keys.workers(), ...prune);
  return { live, stale };
}

/**
 * A pool whose workers may all be gone (scaled to zero) while its calls wait in the queue for one
 * to start: its tools are remembered here, without expiry, by the workers that serve it.
 */
export const waitingPoolSchema = z.object({
  pool: z.string(),
  tools: z.array(toolSpecSchema),
  updatedAt: z.number(),
});
export type WaitingPool = z.infer<typeof waitingPoolSchema>;

/** A worker of a waiting pool adds its tools to the pool's entry; others remove the entry. */
export async function publishPoolMode(
  redis: Redis,
  keys: Keys,
  pool: string,
  waitForWorkers: boolean,
  tools: readonly ToolSpec[],
): Promise<void> {
  if (!waitForWorkers) {
    await redis.hdel(keys.waitingPools(), pool);
    return;
  }
  const existing = parseJsonAs(waitingPoolSchema, (await redis.hget(keys.waitingPools(), pool)) ?? '');
  const byName = new Map((existing?.tools ?? []).map((t) => [t.name, t] as const));
  for (const tool of tools) byName.set(tool.name, tool);
  const entry: WaitingPool = { pool, tools: [...byName.values()], updatedAt: Date.now() };
  await redis.hset(keys.waitingPools(), pool, JSON.stringify(entry));
}

export async function readWaitingPools(redis: Redis, keys: Keys): Promise<WaitingPool[]> {
  const all = await redis.hgetall(keys.waitingPools());
  return Object.values(all).flatMap((raw) => {
    const entry = parseJsonAs(waitingPoolSchema, raw);
    return entry ? [entry] : [];
  });
}
