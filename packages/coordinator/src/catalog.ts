/**
 * What tools exist and where they run, read from the workers' heartbeats in Redis, so that a
 * coordinator knows the tools without importing their code. Refreshed periodically and on a miss.
 */
import {
  type Keys,
  type Logger,
  type Redis,
  readWorkers,
  type ToolSpec,
  type WorkerInfo,
} from '@toolq/shared';

export type ToolLookup =
  | { kind: 'ok'; spec: ToolSpec; pool: string /** live workers serving it there */; workers: number }
  | { kind: 'unknown' }
  | { kind: 'no_worker'; pool: string };

export interface CatalogTool extends ToolSpec {
  pools: string[];
  liveWorkers: number;
}

interface Entry {
  spec: ToolSpec;
  /** pool → live workers serving the tool there */
  pools: Map<string, number>;
}

export class Catalog {
  private tools = new Map<string, Entry>();
  private workers: WorkerInfo[] = [];
  private refreshing: Promise<void> | undefined;
  private refreshStartedAt = 0;
  /** Start time of the last read that completed. */
  private lastRefreshStartedAt = 0;
  private timer: NodeJS.Timeout | undefined;

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
    const { live, stale } = await readWorkers(this.options.redis, this.options.keys);
    const tools = new Map<string, Entry>();
    // Stale workers first, so a live worker's description of a tool wins.
    for (const [worker, alive] of [
      ...stale.map((w) => [w, 0] as const),
      ...live.map((w) => [w, 1] as const),
    ]) {
      for (const spec of worker.tools) {
        const entry = tools.get(spec.name) ?? { spec, pools: new Map<string, number>() };
        if (alive) entry.spec = spec;
        entry.pools.set(worker.pool, (entry.pools.get(worker.pool) ?? 0) + alive);
        tools.set(spec.name, entry);
      }
    }
    this.tools = tools;
    this.workers = live;
    this.lastRefreshStartedAt = Math.max(this.lastRefreshStartedAt, this.refreshStartedAt);
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
    if (!entry) return { kind: 'unknown' };
    let best: [string, number] | undefined;
    for (const [pool, count] of entry.pools) if (!best || count > best[1]) best = [pool, count];
    if (!best || best[1] === 0) return { kind: 'no_worker', pool: best?.[0] ?? 'default' };
    return { kind: 'ok', spec: entry.spec, pool: best[0], workers: best[1] };
  }

  list(): CatalogTool[] {
    return [...this.tools.values()]
      .map(({ spec, pools }) => ({
        ...spec,
        pools: [...pools.keys()].sort(),
        liveWorkers: [...pools.values()].reduce((a, b) => a + b, 0),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  liveWorkers(): readonly WorkerInfo[] {
    return this.workers;
  }
}
