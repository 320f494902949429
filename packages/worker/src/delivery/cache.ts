/**
 * Shared results for tools that declare `cache` (docs/delivery.md): identical calls (same tool,
 * same input, same scope) share one run. The first takes a lock (SET NX) and runs; the others,
 * on any worker of any coordinator's batches, wait for its result; calls within `ttlMs` after it
 * read the stored result. Only `ok` results are stored: a failure is not shared with later
 * calls, and a waiter whose leader failed runs the call itself. Each call still answers with its
 * own tool_use id. Tools without `cache` never reach Redis here.
 */
import { createHash } from 'node:crypto';
import type { AnyTool, CallResult } from '@toolq/shared';
import {
  type Keys,
  type ParsedJobData,
  parseCallResult,
  type Redis,
  type WorkerMetrics,
} from '@toolq/shared/internal';

/** How often a call waiting for an identical one looks for its result. */
const COALESCE_POLL_MS = 25;

// The stored result, else the lock, in one step: read apart, a leader could store its result and
// release the lock between the two, and the call would take the free lock and run again.
const TAKE = `
local stored = redis.call('GET', KEYS[1])
if stored then return {'stored', stored} end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return {'lock'} end
return {'wait'}
`;
// The result stored and the lock released at once: a waiter never sees neither.
const STORE = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

interface WithCacheScripts {
  toolqCacheTake(entry: string, lock: string, owner: string, lockMs: number): Promise<[string, string?]>;
  toolqCacheStore(entry: string, lock: string, json: string, ttlMs: number, owner: string): Promise<number>;
  toolqCacheRelease(lock: string, owner: string): Promise<number>;
}

/** JSON with object keys sorted: `{a,b}` and `{b,a}` are the same input. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

export function cacheHash(tool: AnyTool, data: Pick<ParsedJobData, 'app' | 'input'>): string {
  const scope = tool.cache?.scope === 'app' ? `app:${data.app ?? 'default'}` : 'fleet';
  return createHash('sha256')
    .update(`${scope}\n${tool.name}\n${canonicalJson(data.input)}`)
    .digest('hex')
    .slice(0, 40);
}

export function createResultCache(options: {
  redis: Redis;
  keys: Keys;
  metrics: WorkerMetrics;
  owner: string;
}) {
  const { redis, keys, metrics, owner } = options;
  const scripts = redis as Redis & Partial<WithCacheScripts>;
  if (!scripts.toolqCacheStore) {
    redis.defineCommand('toolqCacheTake', { numberOfKeys: 2, lua: TAKE });
    redis.defineCommand('toolqCacheStore', { numberOfKeys: 2, lua: STORE });
    redis.defineCommand('toolqCacheRelease', { numberOfKeys: 1, lua: RELEASE });
  }
  const r = scripts as Redis & WithCacheScripts;
  const count = (tool: string, result: 'hit' | 'miss' | 'coalesced') => metrics.cache.inc({ tool, result });

  /** The stored result as this call's answer: its own tool_use id, the shared content. */
  const asOwn = (stored: CallResult, data: ParsedJobData): CallResult => {
    const now = Date.now();
    return {
      ...stored,
      toolUseId: data.toolUseId,
      attempts: 0,
      enqueuedAt: data.enqueuedAt,
      startedAt: now,
      finishedAt: now,
    };
  };

  /** The shared result, a wait for it, or `run` (and store). */
  const shared = async (
    tool: AnyTool,
    cache: NonNullable<AnyTool['cache']>,
    data: ParsedJobData,
    signal: AbortSignal,
    run: () => Promise<CallResult>,
  ): Promise<CallResult> => {
    const hash = cacheHash(tool, data);
    const entry = keys.cacheEntry(hash);
    const lock = keys.cacheLock(hash);
    let waited = false;
    while (!signal.aborted && Date.now() < data.deadline) {
      const token = `${owner}:${data.toolUseId}`;
      const lockMs = Math.max(1, Math.min(data.timeoutMs, data.deadline - Date.now())) + 1_000;
      const [state, raw] = await r.toolqCacheTake(entry, lock, token, lockMs);
      const stored = state === 'stored' && raw !== undefined ? parseCallResult(raw) : undefined;
      if (stored) {
        count(tool.name, waited ? 'coalesced' : 'hit');
        return asOwn(stored, data);
      }
      // An entry that does not parse (written by another version) is not shared: run the call.
      if (state === 'stored') return run();
      if (state === 'lock') {
        count(tool.name, 'miss');
        // runCall never throws. A store that fails costs the sharing, never the call's answer.
        const result = await run();
        const stored =
          result.outcome === 'ok'
            ? r.toolqCacheStore(entry, lock, JSON.stringify(result), cache.ttlMs, token)
            : r.toolqCacheRelease(lock, token);
        await stored.catch(() => undefined);
        return result;
      }
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, COALESCE_POLL_MS));
    }
    return run(); // answers the deadline or the cancellation as any call does
  };

  return {
    /**
     * `run` itself for a tool without `cache` (not wrapped: no promise of its own per call),
     * else the shared result, a wait for it, or `run` (and store).
     */
    run(
      tool: AnyTool | undefined,
      data: ParsedJobData,
      signal: AbortSignal,
      run: () => Promise<CallResult>,
    ): Promise<CallResult> {
      const cache = tool?.cache;
      return tool && cache ? shared(tool, cache, data, signal, run) : run();
    },
  };
}
export type ResultCache = ReturnType<typeof createResultCache>;
