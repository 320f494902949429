/**
 * Flow control's state in Redis. Fleet-wide hashes (outside any queue's slot): the operators'
 * overrides and the tools a downstream held (429). Per tool, in its queue's slot (hash tag
 * `{tool=<name>}`, beside BullMQ's own keys): the sliding log of starts and the fair-share tags.
 * Every check that must be exact is one Lua script on Redis's own clock (TIME), so that workers
 * with skewed clocks still agree.
 */
import { CALL_PRIORITY } from '../contract.ts';
import { parseJsonAs } from '../json.ts';
import type { Redis } from '../redis.ts';
import { type LimitsOverride, limitsOverrideSchema, type RateLimit } from './limits.ts';
import { flowRoute } from './route.ts';

/** BullMQ's priorities are 1 .. 2^21-1. */
export const MAX_PRIORITY = 2 ** 21 - 1;
/**
 * Most waiting lower-priority calls one higher-priority enqueue moves back (FAIR_TAGS): bounds the
 * time the script holds Redis (measured ~1 ms for 100, ~67 ms for 1,000 under load 20).
 */
const FAIR_RETAG_MAX = 256;

export interface FlowKeys {
  overrides: string;
  held: string;
  /** The BullMQ key `<prefix>:{tool=<name>}:<suffix>` of a tool's queue (meta, wait, active, ...). */
  queueKey(tool: string, suffix: string): string;
  starts(tool: string): string;
  fair(tool: string): string;
  /** One app's waiting calls of one priority, with their tags (FAIR_TAGS); the app is its last part. */
  queued(tool: string, priority: number, app: string): string;
}

export function flowKeys(prefix: string): FlowKeys {
  const queueKey = (tool: string, suffix: string) => `${prefix}:{${flowRoute(tool)}}:${suffix}`;
  return {
    overrides: `${prefix}:flow:limits`,
    held: `${prefix}:flow:held`,
    queueKey,
    starts: (tool) => queueKey(tool, 'flow:starts'),
    fair: (tool) => queueKey(tool, 'flow:fair'),
    queued: (tool, priority, app) => queueKey(tool, `flow:fq:${priority}:${app}`),
  };
}

/**
 * The sliding log: starts whose time is within the last perMs stay; below `max` of them the start
 * is admitted and logged, else the answer is how long until the oldest leaves the window. A queue
 * held by a downstream's 429 (BullMQ's manual rate limit: its limiter key set to MAX_SAFE_INTEGER)
 * admits nothing either, so a job moved to active just before the hold does not start inside it.
 * Admitted starts also move the tool's virtual clock (fair shares) to the call's tag, and leave
 * their app's list of waiting calls (FAIR_TAGS).
 */
const ADMIT_START = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('PTTL', KEYS[3])
if held > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= 1e15 then return {0, held, now, 2} end
local max = tonumber(ARGV[1])
if max > 0 then
  local perMs = tonumber(ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - perMs)
  if redis.call('ZCARD', KEYS[1]) >= max then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + perMs - now, now, 1}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], perMs)
end
local tag = tonumber(ARGV[4])
if tag > 0 and tag > tonumber(redis.call('HGET', KEYS[2], 'vclock') or '0') then
  redis.call('HSET', KEYS[2], 'vclock', tag)
end
redis.call('ZREM', KEYS[4], ARGV[5])
return {1, 0, now, 0}
`;

/**
 * Start-time fair queuing between apps: each call's tag is max(its app's last tag, the tool's
 * virtual clock) + 1, and the tag is the call's BullMQ priority (lower starts first), so that each
 * app with calls waiting gets one start in turn. An idle queue (nothing waiting) starts a new round
 * at 0, which keeps tags far below BullMQ's 2^21 limit unless a backlog of ~2M calls builds up;
 * beyond it tags stay at the limit and those calls start in arrival order.
 *
 * Priorities within an app: the app's turns (its tags) stay what they are, only which of its calls
 * takes each turn changes. Each waiting call is listed per (priority, app) with its tag; new calls
 * take the smallest tags of the app's waiting calls of a lower priority, and those move back by as
 * many turns (their BullMQ score and the job's `priority` field rewritten here, keeping BullMQ's
 * arrival counter), so the app gets no more turns than before. It costs one rewrite per waiting
 * lower-priority call of that app, and nothing when the app's calls all have one priority.
 * At most FAIR_RETAG_MAX of them move (or n, when more; a Lua script blocks Redis): past those,
 * the last n moved share the turn of the first call that keeps its tag (BullMQ's arrival counter
 * starts them before it, so the order sent holds), and the n turns after the app's last are left
 * to the other apps: the app gets n starts early and gives them back later.
 * An entry whose job no longer waits is skipped; once its tag is behind the virtual clock it is
 * dropped (a job removed at its deadline), and every list goes when the queue is idle.
 */
const FAIR_TAGS = `
local fair, prioritized, qp, most = KEYS[1], KEYS[2], ARGV[6], tonumber(ARGV[7])
if redis.call('ZCARD', prioritized) == 0 and redis.call('LLEN', KEYS[3]) == 0 then
  for _, f in ipairs(redis.call('HKEYS', fair)) do
    if string.sub(f, 1, 2) == 'q:' then redis.call('DEL', qp .. 'flow:fq:' .. string.sub(f, 3)) end
  end
  redis.call('DEL', fair)
end
local v = tonumber(redis.call('HGET', fair, 'vclock') or '0')
local app, n, cap, p = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local field = 'a:' .. app
local last = math.max(tonumber(redis.call('HGET', fair, field) or '0'), v)
-- Moved back: at most "most" (never fewer than the new calls); the first one past them is "over".
most = math.max(most, n)
local lower, slots = {}, {}
for q = p - 1, tonumber(ARGV[5]), -1 do
  if #lower > most then break end
  local key = qp .. 'flow:fq:' .. q .. ':' .. app
  local items = redis.call('ZRANGE', key, 0, most - #lower, 'WITHSCORES')
  for i = 1, #items, 2 do
    local id, tag = items[i], tonumber(items[i + 1])
    local score = redis.call('ZSCORE', prioritized, id)
    if score then
      lower[#lower + 1] = { id, tonumber(score) % 4294967296, key, tag }
    elseif tag <= v then
      redis.call('ZREM', key, id)
    end
  end
end
local over = lower[most + 1]
for j = 1, math.min(#lower, most) do slots[j] = lower[j][4] end
if not over then
  for i = 1, n do slots[#slots + 1] = math.min(last + i, cap) end
end
table.sort(slots)
for j = 1, math.min(#lower, most) do
  -- Past the moved ones, the last n share the turn of the first that stays: the arrival counter
  -- starts them before it, so the order sent holds.
  local item, tag = lower[j], slots[n + j] or over[4]
  redis.call('ZADD', prioritized, tag * 4294967296 + item[2], item[1])
  redis.call('HSET', qp .. item[1], 'priority', tag)
  redis.call('ZADD', item[3], tag, item[1])
end
redis.call('HSET', fair, field, last + n)
local key = qp .. 'flow:fq:' .. p .. ':' .. app
local tags = {}
for i = 1, n do
  tags[i] = slots[i]
  redis.call('ZADD', key, slots[i], ARGV[7 + i])
end
redis.call('HSET', fair, 'q:' .. p .. ':' .. app, 1)
redis.call('PEXPIRE', key, 86400000)
redis.call('PEXPIRE', fair, 86400000)
return tags
`;

/** A downstream's hold only ever grows: two workers told 1 s and 30 s keep 30 s. */
const MARK_STARTED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

const HOLD = `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
`;

interface WithFlowScripts {
  toolqAdmitStart(
    starts: string,
    fair: string,
    limiter: string,
    queued: string,
    max: number,
    perMs: number,
    member: string,
    tag: number,
    jobId: string,
  ): Promise<[number, number, number, number]>;
  toolqFairTags(
    fair: string,
    prioritized: string,
    wait: string,
    app: string,
    count: number,
    cap: number,
    priority: number,
    minPriority: number,
    queuePrefix: string,
    most: number,
    ...jobIds: string[]
  ): Promise<number[]>;
  toolqHold(held: string, tool: string, until: number): Promise<number>;
  toolqMarkStarted(batchKey: string, field: string, at: number): Promise<number>;
}

function withScripts(redis: Redis): Redis & WithFlowScripts {
  const r = redis as Redis & Partial<WithFlowScripts>;
  if (!r.toolqAdmitStart) {
    redis.defineCommand('toolqAdmitStart', { numberOfKeys: 4, lua: ADMIT_START });
    redis.defineCommand('toolqFairTags', { numberOfKeys: 3, lua: FAIR_TAGS });
    redis.defineCommand('toolqHold', { numberOfKeys: 1, lua: HOLD });
    redis.defineCommand('toolqMarkStarted', { numberOfKeys: 1, lua: MARK_STARTED });
  }
  return r as Redis & WithFlowScripts;
}

export type Admission =
  | { admitted: true; at: number }
  /** `window`: the rate limit's window is full; `held`: a downstream's hold is in force. */
  | { admitted: false; waitMs: number; at: number; why: 'window' | 'held' };

/** Asks Redis whether a call of `tool` may start now under its rate limit (null: no limit). */
export async function admitStart(
  redis: Redis,
  keys: FlowKeys,
  tool: string,
  call: {
    rateLimit: RateLimit | null;
    member: string;
    tag: number;
    /** The job, its app and its priority: an admitted call leaves its app's waiting list. */
    jobId: string;
    app: string;
    priority: number;
  },
): Promise<Admission> {
  const [ok, waitMs, at, why] = await withScripts(redis).toolqAdmitStart(
    keys.starts(tool),
    keys.fair(tool),
    keys.queueKey(tool, 'limiter'),
    keys.queued(tool, call.priority, call.app),
    call.rateLimit?.max ?? 0,
    call.rateLimit?.perMs ?? 0,
    call.member,
    call.tag,
    call.jobId,
  );
  if (ok === 1) return { admitted: true, at };
  return { admitted: false, waitMs: Math.max(1, waitMs), at, why: why === 2 ? 'held' : 'window' };
}

/**
 * The fair-share tags (BullMQ priorities) of new calls (their job ids, in the order sent) of one
 * app, all of one priority, to a flow-controlled tool; the app's waiting calls of a lower priority
 * move back behind them.
 */
export function fairTags(
  redis: Redis,
  keys: FlowKeys,
  tool: string,
  calls: { app: string; priority: number; jobIds: readonly string[] },
): Promise<number[]> {
  return withScripts(redis).toolqFairTags(
    keys.fair(tool),
    keys.queueKey(tool, 'prioritized'),
    keys.queueKey(tool, 'wait'),
    calls.app,
    calls.jobIds.length,
    MAX_PRIORITY,
    calls.priority,
    CALL_PRIORITY.min,
    keys.queueKey(tool, ''),
    FAIR_RETAG_MAX,
    ...calls.jobIds,
  );
}

/** Records that a downstream refused the tool until `until` (epoch ms); the tool stays flow-routed. */
export async function holdTool(redis: Redis, keys: FlowKeys, tool: string, until: number): Promise<void> {
  await withScripts(redis).toolqHold(keys.held, tool, until);
}

export interface FlowState {
  overrides: Map<string, LimitsOverride>;
  /** tool → epoch ms until which a downstream asked for no calls (in the past once it is over). */
  held: Map<string, number>;
}

/** Both fleet-wide hashes; a malformed entry is skipped rather than stopping every tool. */
export async function readFlowState(redis: Redis, keys: FlowKeys): Promise<FlowState> {
  const [overrides, held] = await Promise.all([redis.hgetall(keys.overrides), redis.hgetall(keys.held)]);
  const state: FlowState = { overrides: new Map(), held: new Map() };
  for (const [tool, raw] of Object.entries(overrides)) {
    const parsed = parseJsonAs(limitsOverrideSchema, raw);
    if (parsed) state.overrides.set(tool, parsed);
  }
  for (const [tool, raw] of Object.entries(held)) {
    const until = Number(raw);
    if (Number.isFinite(until)) state.held.set(tool, until);
  }
  return state;
}

export async function readOverride(
  redis: Redis,
  keys: FlowKeys,
  tool: string,
): Promise<LimitsOverride | undefined> {
  const raw = await redis.hget(keys.overrides, tool);
  return raw === null ? undefined : parseJsonAs(limitsOverrideSchema, raw);
}

export async function writeOverride(
  redis: Redis,
  keys: FlowKeys,
  tool: string,
  override: LimitsOverride,
): Promise<void> {
  await redis.hset(keys.overrides, tool, JSON.stringify(override));
}

/** The batch record's field that says a flow-controlled call started (so it is not "not started"). */
export const startedField = (index: number) => `s:${index}`;

/** Only into an existing record: a fragment without meta (and without a TTL) would never go. */
export async function markStarted(redis: Redis, batchKey: string, index: number, at: number): Promise<void> {
  await withScripts(redis).toolqMarkStarted(batchKey, startedField(index), at);
}

/**
 * The batch record's field that says a pool queue's call was moved to its tool's queue (a limit
 * came while it waited): at its deadline it is a flow call, answered `not_started` if never admitted.
 */
export const handedOffField = (index: number) => `f:${index}`;

export async function markHandedOff(
  redis: Redis,
  batchKey: string,
  index: number,
  at: number,
): Promise<void> {
  await withScripts(redis).toolqMarkStarted(batchKey, handedOffField(index), at);
}

/** Which of these calls of a batch record started. */
export function readStarted(
  redis: Redis,
  batchKey: string,
  indexes: readonly number[],
): Promise<Set<number>> {
  return readMarks(redis, batchKey, indexes, startedField);
}

/** Which of these calls of a batch record were moved from a pool queue to their tool's queue. */
export function readHandedOff(
  redis: Redis,
  batchKey: string,
  indexes: readonly number[],
): Promise<Set<number>> {
  return readMarks(redis, batchKey, indexes, handedOffField);
}

async function readMarks(
  redis: Redis,
  batchKey: string,
  indexes: readonly number[],
  field: (index: number) => string,
): Promise<Set<number>> {
  if (indexes.length === 0) return new Set();
  const values = await redis.hmget(batchKey, ...indexes.map(field));
  return new Set(indexes.filter((_, i) => values[i] !== null));
}
