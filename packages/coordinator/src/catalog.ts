/**
 * What tools exist and where they run, read from the workers' heartbeats in Redis, so that a
 * coordinator knows the tools without importing their code. Refreshed periodically and on a miss.
 */
import type { Logger } from '@toolq/shared';
import {
  type HeartbeatMemory,
  type Keys,
  type Redis,
  readWaitingPools,
  readWorkers,
  type ToolSetMemory,
  type ToolSpec,
  type WaitingPoolMemory,
  type WorkerInfo,
} from '@toolq/shared/internal';

export type ToolLookup =
  | {
      kind: 'ok';
      spec: ToolSpec;
      pool: string;
      /** The queue to send it to: the pool's own, or a lane whose workers all serve the tool. */
      queue: string;
      /** Live workers consuming that queue that serve it. */
      workers: number;
    }
  | { kind: 'unknown' }
  | { kind: 'no_worker'; pool: string };

export interface CatalogTool extends ToolSpec {
  pools: string[];
  liveWorkers: number;
  /** Its pool lets calls wait for a worker to start (scale from zero). */
  waitsForWorkers: boolean;
}

interface Entry {
  spec: ToolSpec;
  /** pool → live workers serving the tool there */
  pools: Map<string, number>;
  /** lane → live workers of it (all of which serve the tool), with the lane's pool */
  lanes: Map<string, { pool: string; workers: number }>;
}

export class Catalog {
  private tools = new Map<string, Entry>();
  private workers: WorkerInfo[] = [];
  /** pool → live workers */
  private poolSizes = new Map<string, number>();
  /** tool → a pool whose calls wait for a worker to start (scale from zero), with the tool's spec */
  private waiting = new Map<string, { pool: string; spec: ToolSpec }>();
  private refreshing: Promise<void> | undefined;
  private refreshStartedAt = 0;
  /** Start time of the last read that completed. */
  private lastRefreshStartedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** So that a failover to a replica with older heartbeats does not make live workers look gone. */
  private readonly heartbeats: HeartbeatMemory = new Map();
  /** Each worker's specs by version: a refresh reads the small heartbeats, and specs only when they change. */
  private readonly toolSets: ToolSetMemory = new Map();
  /** The same for the waiting pools' entries (as large as their tool sets). */
  private readonly waitingPools: WaitingPoolMemory = new Map();
  private readonly refreshListeners = new Set<() => void>();

  constructor(private readonly options: { redis: Redis; keys: Keys; logger: Logger; refreshMs?: number }) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err: Error) =>
        this.options.logger.warn({ err: err.message }, 'catalog refresh failed'),
      );
    }, this.options.refreshMs ?? 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  refresh(): Promise<void> {
    if (!this.refreshing) {
      const startedAt = Date.now();
      this.refreshing = this.load().finally(() => {
        this.refreshing = undefined;
      });
      this.refreshStartedAt = startedAt;
    }
    return this.refreshing;
  }

  /** Waits for a read of the workers that started at `since` or later (one shared by concurrent callers). */
  private async refreshSince(since: number): Promise<void> {
    if (this.refreshing && this.refreshStartedAt >= since) return this.refreshing;
    await this.refreshing?.catch(() => undefined);
    if (this.lastRefreshStartedAt < since) await this.refresh();
  }

  private async load(): Promise<void> {
    const [{ live, stale }, waitingPools] = await Promise.all([
      readWorkers(this.options.redis, this.options.keys, Date.now(), this.heartbeats, this.toolSets),
      readWaitingPools(this.options.redis, this.options.keys, Date.now(), this.waitingPools),
    ]);
    const waiting = new Map<string, { pool: string; spec: ToolSpec }>();
    for (const { pool, tools } of waitingPools)
      for (const spec of tools) waiting.set(spec.name, { pool, spec });
    const tools = new Map<string, Entry>();
    // Stale workers first, so a live worker's description of a tool wins.
    const poolSizes = new Map<string, number>();
    for (const worker of live) poolSizes.set(worker.pool, (poolSizes.get(worker.pool) ?? 0) + 1);
    for (const [worker, alive] of [
      ...stale.map((w) => [w, 0] as const),
      ...live.map((w) => [w, 1] as const),
    ]) {
      for (const spec of worker.tools) {
        const entry = tools.get(spec.name) ?? { spec, pools: new Map<string, number>(), lanes: new Map() };
        if (alive) entry.spec = spec;
        entry.pools.set(worker.pool, (entry.pools.get(worker.pool) ?? 0) + alive);
        if (alive && worker.lane) {
          const lane = entry.lanes.get(worker.lane) ?? { pool: worker.pool, workers: 0 };
          lane.workers++;
          entry.lanes.set(worker.lane, lane);
        }
        tools.set(spec.name, entry);
      }
    }
    this.tools = tools;
    this.workers = live;
    this.poolSizes = poolSizes;
    this.waiting = waiting;
    this.lastRefreshStartedAt = Math.max(this.lastRefreshStartedAt, this.refreshStartedAt);
    for (const listener of this.refreshListeners) listener();
  }

  /** Calls `listener` after every read of the workers (for watchers of the tool set); returns its removal. */
  onRefresh(listener: () => void): () => void {
    this.refreshListeners.add(listener);
    return () => this.refreshListeners.delete(listener);
  }

  /** Looks a tool up; a miss waits for a read of the workers that began after it (shared by concurrent misses). */
  async lookup(name: string): Promise<ToolLookup> {
    const since = Date.now();
    const cached = this.lookupCached(name);
    if (cached.kind === 'ok') return cached;
    // Unknown, or known without a live worker: a worker may have started since the last read.
    await this.refreshSince(since);
    return this.lookupCached(name);
  }

  lookupCached(name: string): ToolLookup {
    const entry = this.tools.get(name);
    const waiting = this.waiting.get(name);
    let best: [string, number] | undefined;
    for (const [pool, count] of entry?.pools ?? []) if (!best || count > best[1]) best = [pool, count];
    if (!entry || !best || best[1] === 0) {
      // A pool scaled to zero: the call waits in its queue, within its deadline, for a worker.
      if (waiting)
        return { kind: 'ok', spec: waiting.spec, pool: waiting.pool, queue: waiting.pool, workers: 0 };
      return entry ? { kind: 'no_worker', pool: best?.[0] ?? 'default' } : { kind: 'unknown' };
    }
    const [pool, serving] = best;
    // Every live worker of the pool serves it: its shared queue. Otherwise only a lane is safe.
    if (serving >= (this.poolSizes.get(pool) ?? 0))
      return { kind: 'ok', spec: entry.spec, pool, queue: pool, workers: serving };
    let lane: [string, number] | undefined;
    for (const [name, info] of entry.lanes)
      if (info.pool === pool && (!lane || info.workers > lane[1])) lane = [name, info.workers];
    // Workers too old to have lanes: the shared queue, where a worker lacking the tool gives it back.
    if (!lane) return { kind: 'ok', spec: entry.spec, pool, queue: pool, workers: serving };
    return { kind: 'ok', spec: entry.spec, pool, queue: lane[0], workers: lane[1] };
  }

  /** Every lane a live worker of the pool consumes (for queue gauges). */
  lanesOf(pool: string): string[] {
    return [...new Set(this.workers.filter((w) => w.pool === pool && w.lane).map((w) => w.lane as string))];
  }

  list(): CatalogTool[] {
    const entries = [...this.tools.values()];
    for (const [name, { pool, spec }] of this.waiting)
      if (!this.tools.has(name)) entries.push({ spec, pools: new Map([[pool, 0]]), lanes: new Map() });
    return entries
      .map(({ spec, pools }) => ({
        ...spec,
        pools: [...pools.keys()].sort(),
        liveWorkers: [...pools.values()].reduce((a, b) => a + b, 0),
        waitsForWorkers: this.waiting.has(spec.name),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  liveWorkers(): readonly WorkerInfo[] {
    return this.workers;
  }
}
