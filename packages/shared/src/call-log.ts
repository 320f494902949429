/**
 * The fleet's call log for the performance report: every coordinator (and every worker, for calls
 * from plain producers) adds what it answered to per-minute buckets in Redis, so a report over a
 * window covers the whole fleet, not one process's memory.
 *
 * Bounded on both sides: a process aggregates in memory and writes at most once a second (one
 * script per minute bucket touched, whatever the call rate), and a bucket is one hash per minute
 * holding, per tool, counts, sum, max and a log-scale histogram of durations (γ = 1.05, so a
 * percentile is within ±2.5% of the true value), expiring after CALL_LOG_RETENTION_MS.
 *
 * A call of an app is counted twice: in the fleet's bucket (operators, `pnpm report`) and in its
 * app's own, so that an app's report shows its calls only, read without touching other apps' keys.
 */

import type { Logger } from './logger.ts';
import type { Redis } from './redis.ts';

export const CALL_LOG_BUCKET_MS = 60_000;
/** How far back a report can look. */
export const CALL_LOG_RETENTION_MS = 24 * 3600_000;
const GAMMA = 1.05;
const LOG_GAMMA = Math.log(GAMMA);
const FLUSH_EVERY_MS = 1_000;

// One hash per minute; per tool the fields n|t, ok|t, sum|t, max|t and b<i>|t (histogram bin i),
// and unknown|t for calls answered outcome unknown (docs/delivery.md) and ns|t for calls answered
// not_started (docs/flow-control.md), each only when there were some.
const FLUSH = `
local key = KEYS[1]
local incrs = tonumber(ARGV[2])
local i = 3
for _ = 1, incrs do
  redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  local current = tonumber(redis.call('HGET', key, ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
redis.call('PEXPIRE', key, ARGV[1])
return 1
`;

type FlushingRedis = Redis & {
  toolqCallLogFlush(key: string, ttlMs: number, incrs: number, ...args: (string | number)[]): Promise<number>;
};

function withFlush(redis: Redis): FlushingRedis {
  const r = redis as FlushingRedis;
  if (!r.toolqCallLogFlush) redis.defineCommand('toolqCallLogFlush', { numberOfKeys: 1, lua: FLUSH });
  return r;
}

/** Histogram bin of a duration: 0 for ≤ 1 ms, else ⌈log_γ ms⌉. */
export function durationBin(ms: number): number {
  return ms <= 1 ? 0 : Math.ceil(Math.log(ms) / LOG_GAMMA);
}

/** The value a bin stands for: the point of least relative error in (γ^(i-1), γ^i]. */
export function binValue(bin: number): number {
  return bin === 0 ? 1 : (2 * GAMMA ** bin) / (GAMMA + 1);
}

export const callLogKey = (prefix: string, bucket: number): string => `${prefix}:calllog:${bucket}`;
/** One app's calls in one minute (app names are key parts: letters, digits, `_.-`). */
export const appCallLogKey = (prefix: string, app: string, bucket: number): string =>
  `${prefix}:calllog:app:${app}:${bucket}`;
/** Plain producers' calls (jobs without a coordinator) are the app `default`'s, like a Dispatcher's without an app. */
export const PLAIN_PRODUCER_APP = 'default';

/** One tool's calls in one minute bucket, not yet written. */
interface PendingTool {
  n: number;
  ok: number;
  unknown: number;
  notStarted: number;
  sum: number;
  max: number;
  bins: Map<number, number>;
}
type PendingBucket = Map<string, PendingTool>;

export class CallLog {
  /** Redis key of a minute bucket (the fleet's or an app's) → its counts not yet written. */
  private pending = new Map<string, PendingBucket>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly redis: FlushingRedis;

  constructor(
    private readonly options: {
      redis: Redis;
      /** Key prefix (TOOLQ_PREFIX). */
      prefix: string;
      logger?: Logger;
    },
  ) {
    this.redis = withFlush(options.redis);
  }

  /**
   * Counts one answered call (also in `app`'s own log, when given): map updates, no Redis round
   * trip. Two outcomes are counted apart: `unknown` (an at-most-once call interrupted after it
   * started: a failure) and `not_started` (a flow-controlled call that never ran: not a failure).
   */
  record(tool: string, ms: number, ok: boolean, at = Date.now(), app?: string, outcome?: string): void {
    const bucket = Math.floor(at / CALL_LOG_BUCKET_MS);
    this.add(callLogKey(this.options.prefix, bucket), tool, ms, ok, outcome);
    if (app !== undefined) this.add(appCallLogKey(this.options.prefix, app, bucket), tool, ms, ok, outcome);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, FLUSH_EVERY_MS);
      this.timer.unref();
    }
  }

  private add(key: string, tool: string, ms: number, ok: boolean, outcome: string | undefined): void {
    let b = this.pending.get(key);
    if (!b) {
      b = new Map();
      this.pending.set(key, b);
    }
    let t = b.get(tool);
    if (!t) {
      t = { n: 0, ok: 0, unknown: 0, notStarted: 0, sum: 0, max: -1, bins: new Map() };
      b.set(tool, t);
    }
    const duration = ms > 0 ? Math.round(ms) : 0;
    const bin = durationBin(duration);
    t.n++;
    if (ok) t.ok++;
    if (outcome === 'unknown') t.unknown++;
    else if (outcome === 'not_started') t.notStarted++;
    t.sum += duration;
    if (duration > t.max) t.max = duration;
    t.bins.set(bin, (t.bins.get(bin) ?? 0) + 1);
  }

  /** Writes what was recorded since the last flush; resolves when Redis has it (never rejects). */
  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.flushing.then(() => this.write(batch));
    return this.flushing;
  }

  /** The fleet's (or one app's) calls over the last `windowMs` (what every process had flushed). */
  read(windowMs: number, now?: number, app?: string): Promise<CallLogWindow> {
    return readCallLog(this.options.redis, {
      prefix: this.options.prefix,
      windowMs,
      ...(now ? { now } : {}),
      ...(app !== undefined ? { app } : {}),
    });
  }

  /** Stops the timer and writes the rest. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private async write(batch: Map<string, PendingBucket>): Promise<void> {
    await Promise.all(
      [...batch].map(async ([key, tools]) => {
        const incrs: (string | number)[] = [];
        const maxes: (string | number)[] = [];
        for (const [tool, t] of tools) {
          incrs.push(`n|${tool}`, t.n, `ok|${tool}`, t.ok, `sum|${tool}`, t.sum);
          if (t.unknown > 0) incrs.push(`unknown|${tool}`, t.unknown);
          if (t.notStarted > 0) incrs.push(`ns|${tool}`, t.notStarted);
          for (const [bin, n] of t.bins) incrs.push(`b${bin}|${tool}`, n);
          maxes.push(`max|${tool}`, t.max);
        }
        try {
          await this.redis.toolqCallLogFlush(
            key,
            CALL_LOG_RETENTION_MS + CALL_LOG_BUCKET_MS,
            incrs.length / 2,
            ...incrs,
            ...maxes,
          );
        } catch (err) {
          // The report is for operators: a lost second of counts is logged, not retried forever.
          this.options.logger?.warn({ err: (err as Error).message }, 'could not write the call log');
        }
      }),
    );
  }
}

export interface ToolCallStats {
  calls: number;
  ok: number;
  /** Answered outcome unknown (at-most-once calls interrupted after they started). */
  unknown: number;
  /** Answered not_started (flow-controlled calls that never ran). */
  notStarted: number;
  sumMs: number;
  maxMs: number;
  /** Histogram bin → calls. */
  bins: Map<number, number>;
}

export interface CallLogWindow {
  /** Epoch ms of the first and past-the-last minute read. */
  from: number;
  to: number;
  tools: Map<string, ToolCallStats>;
}

/**
 * Reads and merges the minute buckets that overlap the last `windowMs` (pipelined: one round
 * trip): the fleet's, or with `app` that app's only.
 */
export async function readCallLog(
  redis: Redis,
  options: { prefix: string; windowMs: number; now?: number; app?: string },
): Promise<CallLogWindow> {
  const now = options.now ?? Date.now();
  const last = Math.floor(now / CALL_LOG_BUCKET_MS);
  // Rounded out to whole minutes: the report covers at least the window.
  const first = Math.floor((now - Math.min(options.windowMs, CALL_LOG_RETENTION_MS)) / CALL_LOG_BUCKET_MS);
  const buckets: number[] = [];
  for (let b = first; b <= last; b++) buckets.push(b);
  const { app, prefix } = options;
  const keyOf = (b: number) => (app === undefined ? callLogKey(prefix, b) : appCallLogKey(prefix, app, b));
  const hashes = await Promise.all(buckets.map((b) => redis.hgetall(keyOf(b))));
  const tools = new Map<string, ToolCallStats>();
  for (const hash of hashes) {
    for (const [field, raw] of Object.entries(hash)) {
      const bar = field.indexOf('|');
      if (bar < 0) continue;
      const kind = field.slice(0, bar);
      const tool = field.slice(bar + 1);
      const n = Number(raw);
      if (!Number.isFinite(n)) continue;
      let t = tools.get(tool);
      if (!t) {
        t = { calls: 0, ok: 0, unknown: 0, notStarted: 0, sumMs: 0, maxMs: 0, bins: new Map() };
        tools.set(tool, t);
      }
      if (kind === 'n') t.calls += n;
      else if (kind === 'ok') t.ok += n;
      else if (kind === 'unknown') t.unknown += n;
      else if (kind === 'ns') t.notStarted += n;
      else if (kind === 'sum') t.sumMs += n;
      else if (kind === 'max') t.maxMs = Math.max(t.maxMs, n);
      else if (kind.startsWith('b')) {
        const bin = Number(kind.slice(1));
        t.bins.set(bin, (t.bins.get(bin) ?? 0) + n);
      }
    }
  }
  return { from: (buckets[0] ?? last) * CALL_LOG_BUCKET_MS, to: (last + 1) * CALL_LOG_BUCKET_MS, tools };
}

/** Nearest-rank percentile from a histogram, clamped to the exact maximum. */
export function histogramPercentile(stats: ToolCallStats, p: number): number {
  if (stats.calls === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * stats.calls));
  let seen = 0;
  for (const bin of [...stats.bins.keys()].sort((a, b) => a - b)) {
    seen += stats.bins.get(bin) ?? 0;
    if (seen >= rank) return Math.min(binValue(bin), stats.maxMs);
  }
  return stats.maxMs;
}
