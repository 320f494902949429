/**
 * The catalog of live workers and the tools they serve: each worker writes its entry on a
 * heartbeat; readers keep only entries whose heartbeat is recent, so a killed worker drops out
 * without anyone cleaning up after it.
 *
 * A heartbeat names its tools by a version (a hash of the specs) and the specs themselves are
 * written beside it only when they change: every coordinator reads the catalog every second, and
 * with the specs inline a worker serving a 10,000-tool MCP catalog made each of them read 3.3 MB a
 * second (and slowed every app's batches, p50 11 → 139 ms). A reader keeps the specs it has read
 * by version (ToolSetMemory) and reads them again only when a heartbeat names another version.
 * Entries with the specs inline (older workers, hand-written ones) are read as they are.
 */
import { createHash } from 'node:crypto';
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

/** Written again now and then even when unchanged, so specs a failover lost come back. */
const SPECS_REPUBLISH_MS = 5 * 60_000;

/** A heartbeat as stored: the specs inline (older workers), or a version of them (`toolsVersion`). */
const workerEntrySchema = workerInfoSchema.extend({
  tools: z.array(toolSpecSchema).optional(),
  toolsVersion: z.string().optional(),
});
const toolSetSchema = z.object({ version: z.string(), tools: z.array(toolSpecSchema) });

/** A publisher's memory of the specs it wrote: which version, and when. */
export interface PublishedToolSet {
  version?: string;
  at?: number;
}

export function toolSetVersion(tools: readonly ToolSpec[]): string {
  return createHash('sha256').update(JSON.stringify(tools)).digest('hex').slice(0, 16);
}

/**
 * Writes a heartbeat: the worker's entry with its tools' version, and the specs themselves when
 * `published` says they changed, were not written lately, or are missing (a Redis that lost them).
 * The specs go first on the same connection, so a reader that sees the new version finds them.
 */
export async function publishWorker(
  redis: Redis,
  keys: Keys,
  info: WorkerInfo,
  published: PublishedToolSet = {},
): Promise<void> {
  const version = toolSetVersion(info.tools);
  const now = Date.now();
  // Remembered once written: a failed write is tried again at the next beat.
  const writeSpecs = async () => {
    await redis.hset(keys.workerTools(), info.id, JSON.stringify({ version, tools: info.tools }));
    published.version = version;
    published.at = now;
  };
  const fresh = published.version === version && now - (published.at ?? 0) < SPECS_REPUBLISH_MS;
  // `tools: []` keeps the entry valid for coordinators older than the version (they would delete it).
  const beat = JSON.stringify({ ...info, tools: [], toolsVersion: version });
  if (!fresh) {
    await Promise.all([writeSpecs(), redis.hset(keys.workers(), info.id, beat)]);
    return;
  }
  const [, present] = await Promise.all([
    redis.hset(keys.workers(), info.id, beat),
    redis.hexists(keys.workerTools(), info.id),
  ]);
  if (!present) await writeSpecs();
}

export async function unpublishWorker(redis: Redis, keys: Keys, workerId: string): Promise<void> {
  await Promise.all([redis.hdel(keys.workers(), workerId), redis.hdel(keys.workerTools(), workerId)]);
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

/** Worker id → the specs last read for it, by version: read again only when its heartbeat names another. */
export type ToolSetMemory = Map<string, { version: string; tools: ToolSpec[] }>;

export async function readWorkers(
  redis: Redis,
  keys: Keys,
  now = Date.now(),
  memory?: HeartbeatMemory,
  toolSets: ToolSetMemory = new Map(),
): Promise<WorkerSnapshot> {
  const all = await redis.hgetall(keys.workers());
  const entries: { id: string; info: WorkerInfo; version: string | undefined }[] = [];
  const prune: string[] = [];
  for (const [id, raw] of Object.entries(all)) {
    const entry = parseJsonAs(workerEntrySchema, raw);
    if (!entry) {
      prune.push(id);
      continue;
    }
    const { toolsVersion, tools, ...rest } = entry;
    entries.push({ id, info: { ...rest, tools: tools ?? [] }, version: toolsVersion });
  }
  await resolveToolSets(redis, keys, entries, toolSets);
  const live: WorkerInfo[] = [];
  const stale: WorkerInfo[] = [];
  for (const { id, info } of entries) {
    const heartbeatAt = Math.max(info.heartbeatAt, memory?.get(id) ?? 0);
    memory?.set(id, heartbeatAt);
    const age = now - heartbeatAt;
    if (age <= WORKER_STALE_AFTER_MS) live.push({ ...info, heartbeatAt });
    else if (age > PRUNE_AFTER_MS) prune.push(id);
    else stale.push(info);
  }
  // A worker that left (or was pruned) is forgotten: the memory never outgrows the catalog.
  for (const known of [memory, toolSets])
    if (known) for (const id of known.keys()) if (!(id in all) || prune.includes(id)) known.delete(id);
  if (prune.length > 0)
    await Promise.all([redis.hdel(keys.workers(), ...prune), redis.hdel(keys.workerTools(), ...prune)]);
  return { live, stale };
}

/**
 * Fills in the tools of the entries that name a version: from `toolSets` when it holds that
 * version, else read (one HMGET for all of them) and kept. Specs missing, or of another version
 * than the heartbeat's (a write in between, a failover), are used as found but not taken as that
 * version's, so the next read tries again.
 */
async function resolveToolSets(
  redis: Redis,
  keys: Keys,
  entries: { id: string; info: WorkerInfo; version: string | undefined }[],
  toolSets: ToolSetMemory,
): Promise<void> {
  const missing = entries.filter((e) => e.version !== undefined && toolSets.get(e.id)?.version !== e.version);
  if (missing.length > 0) {
    const raws = await redis.hmget(keys.workerTools(), ...missing.map((e) => e.id));
    missing.forEach((e, i) => {
      const set = parseJsonAs(toolSetSchema, raws[i] ?? '');
      if (set) toolSets.set(e.id, set);
      else toolSets.delete(e.id);
    });
  }
  for (const e of entries) if (e.version !== undefined) e.info.tools = toolSets.get(e.id)?.tools ?? [];
}

/**
 * A pool whose workers may all be gone (scaled to zero) while its calls wait in the queue for one
 * to start: its tools are remembered here by the workers that serve it, each tool until
 * - no worker has served it for WAITING_TOOL_FORGET_MS (7 days: a pool may sit at zero over a
 *   weekend, but a tool that is gone for good does not stay in the catalog for ever), or
 * - every live worker of the pool registered after the last worker that served it and none serves
 *   it (the pool's workers were redeployed without it). A pool of workers with different tool sets
 *   that scale apart may lose the tools of the kind at zero this way: its workers should serve
 *   the same tools.
 * Before, a tool was remembered without end, and a call for a tool no worker would ever serve
 * again waited in the queue for its whole deadline.
 */
export const WAITING_TOOL_FORGET_MS = 7 * 24 * 3600_000;
/** How often a live worker of a waiting pool says it still serves its tools (and prunes the entry). */
export const WAITING_POOL_REFRESH_MS = 10 * 60_000;

const servedSchema = z.object({
  /** The newest start of a worker that registered the tool. */
  registeredAt: z.number(),
  /** When a live worker last said it serves the tool. */
  seenAt: z.number(),
});

export const waitingPoolSchema = z.object({
  pool: z.string(),
  tools: z.array(toolSpecSchema),
  updatedAt: z.number(),
  /** Per tool name; absent from entries of older workers (then `updatedAt` stands for both). */
  served: z.record(z.string(), servedSchema).optional(),
});
export type WaitingPool = z.infer<typeof waitingPoolSchema>;

/**
 * A worker of a waiting pool adds its tools to the pool's entry, marks the tools of the pool's
 * live workers as served now, and drops those forgotten (see above); a worker of another pool
 * removes the entry. Called at start, when the worker's tools change and every
 * WAITING_POOL_REFRESH_MS. `self`: this worker, which may not be in the catalog yet.
 */
export async function publishPoolMode(
  redis: Redis,
  keys: Keys,
  pool: string,
  waitForWorkers: boolean,
  tools: readonly ToolSpec[],
  self: { id: string; startedAt: number },
  options: { now?: number; toolSets?: ToolSetMemory } = {},
): Promise<void> {
  if (!waitForWorkers) {
    await Promise.all([redis.hdel(keys.waitingPools(), pool), redis.hdel(keys.waitingPoolVersions(), pool)]);
    return;
  }
  const now = options.now ?? Date.now();
  const [raw, { live }] = await Promise.all([
    redis.hget(keys.waitingPools(), pool),
    readWorkers(redis, keys, now, undefined, options.toolSets),
  ]);
  const existing = parseJsonAs(waitingPoolSchema, raw ?? '');
  const workers = [
    ...live.filter((w) => w.pool === pool && w.id !== self.id),
    { startedAt: self.startedAt, tools },
  ];
  const servedNow = new Set(workers.flatMap((w) => w.tools.map((t) => t.name)));
  const oldestStart = Math.min(...workers.map((w) => w.startedAt));
  const byName = new Map((existing?.tools ?? []).map((t) => [t.name, t] as const));
  const served: Record<string, z.infer<typeof servedSchema>> = {};
  for (const name of byName.keys()) {
    const since = existing?.updatedAt ?? now;
    served[name] = existing?.served?.[name] ?? { registeredAt: since, seenAt: since };
  }
  for (const tool of tools) {
    byName.set(tool.name, tool);
    served[tool.name] = {
      registeredAt: Math.max(served[tool.name]?.registeredAt ?? 0, self.startedAt),
      seenAt: now,
    };
  }
  for (const [name, times] of Object.entries(served)) {
    if (servedNow.has(name)) times.seenAt = now;
    const expired = now - times.seenAt > WAITING_TOOL_FORGET_MS;
    const redeployedWithout = !servedNow.has(name) && times.registeredAt < oldestStart;
    if (expired || redeployedWithout) {
      byName.delete(name);
      delete served[name];
    }
  }
  const entry: WaitingPool = { pool, tools: [...byName.values()], updatedAt: now, served };
  // The entry first, on the same connection: a reader that sees the new version finds it.
  await Promise.all([
    redis.hset(keys.waitingPools(), pool, JSON.stringify(entry)),
    redis.hset(keys.waitingPoolVersions(), pool, `${self.id} ${now}`),
  ]);
}

/** Pool → its entry as last read, by the version it was read under (see readWaitingPools). */
export type WaitingPoolMemory = Map<string, { version: string; entry: WaitingPool | undefined }>;

/**
 * The waiting pools, each without the tools no worker has served for WAITING_TOOL_FORGET_MS. With
 * `memory`, an entry is read again only when its version changed (an entry as large as a big MCP
 * catalog is not read every second); entries without a version (older workers) are read each time.
 */
export async function readWaitingPools(
  redis: Redis,
  keys: Keys,
  now = Date.now(),
  memory?: WaitingPoolMemory,
): Promise<WaitingPool[]> {
  let entries: (WaitingPool | undefined)[];
  if (!memory) {
    const all = await redis.hgetall(keys.waitingPools());
    entries = Object.values(all).map((raw) => parseJsonAs(waitingPoolSchema, raw));
  } else {
    const [versions, pools] = await Promise.all([
      redis.hgetall(keys.waitingPoolVersions()),
      redis.hkeys(keys.waitingPools()),
    ]);
    const changed = pools.filter((p) => versions[p] === undefined || memory.get(p)?.version !== versions[p]);
    const raws = changed.length > 0 ? await redis.hmget(keys.waitingPools(), ...changed) : [];
    changed.forEach((pool, i) => {
      // Without a version it counts as changed at every read: kept only for this one.
      memory.set(pool, {
        version: versions[pool] ?? '',
        entry: parseJsonAs(waitingPoolSchema, raws[i] ?? ''),
      });
    });
    for (const pool of memory.keys()) if (!pools.includes(pool)) memory.delete(pool);
    entries = pools.map((p) => memory.get(p)?.entry);
  }
  return entries.flatMap((entry) => {
    if (!entry) return [];
    const seenAt = (name: string) => entry.served?.[name]?.seenAt ?? entry.updatedAt;
    return [{ ...entry, tools: entry.tools.filter((t) => now - seenAt(t.name) <= WAITING_TOOL_FORGET_MS) }];
  });
}
