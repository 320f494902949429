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
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;
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
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
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
    this.lastRefresh = Date.now();
  }

  /** Looks a tool up; an unknown name triggers one fresh read (a worker may have just started). */
  async lookup(name: string): Promise<ToolLookup> {
    if (!this.tools.has(name) && Date.now() - this.lastRefresh > 50) await this.refresh();
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
