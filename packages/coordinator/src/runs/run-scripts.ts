/**
 * The Lua scripts that change a run. Every write by the coordinator running a run goes through
 * `toolqRunWrite`, which checks the owner epoch and the status in the same step as it writes: a
 * coordinator that lost the run (it stalled, another took over and bumped the epoch) or a run
 * cancelled meanwhile gets nothing written. Each script touches only keys of one run (one hash slot).
 */
import type { Redis } from '@toolq/shared/internal';

/**
 * KEYS: record. ARGV: app, request, request hash, now. → 1 created | {app, hash, status}. A running
 * run's keys do not expire: retention counts from its finish (WRITE, CANCEL), so a step longer than
 * the retention cannot lose it.
 */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  local f = redis.call('HMGET', KEYS[1], 'app', 'request_hash', 'status')
  return {f[1] or '', f[2] or '', f[3] or ''}
end
redis.call('HSET', KEYS[1], 'app', ARGV[1], 'status', 'running', 'request', ARGV[2],
  'request_hash', ARGV[3], 'created_at', ARGV[4], 'updated_at', ARGV[4], 'epoch', 0)
return 1
`;

/**
 * KEYS: the app's unfinished runs (runActiveKey). ARGV: run id, now, the app's quota.
 * → 0 over the quota | how many unfinished runs the app has, this one included (its fair place).
 */
const ADMIT = `
local n = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return n end
if n >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return n + 1
`;

/**
 * KEYS: record. ARGV: coordinator id, now. The coordinator BullMQ just gave the run's job becomes its
 * owner: the epoch goes up, which fences every write of the owner before. A parked run (PARK) is
 * woken: `parked_at` goes, `wakes` counts it (a wake is not a takeover).
 * → {'missing'} | {'finished', status} | {'claimed', epoch, request, checkpoint, app, created_at,
 *   updated_at, parked_at ('' unless it was parked), wakes}
 */
const CLAIM = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'running' then return {'finished', status} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local f = redis.call('HMGET', KEYS[1], 'request', 'checkpoint', 'app', 'created_at', 'updated_at', 'parked_at')
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'updated_at', ARGV[2])
local wakes = redis.call('HGET', KEYS[1], 'wakes') or '0'
if f[6] then
  redis.call('HDEL', KEYS[1], 'parked_at')
  wakes = tostring(redis.call('HINCRBY', KEYS[1], 'wakes', 1))
end
return {'claimed', tostring(epoch), f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', wakes}
`;

/**
 * KEYS: record, events. ARGV: epoch, now, the `run_parked` event's data. The owner parks the run
 * (it waits only for approvals; its job goes to BullMQ's delayed set): only while it is running
 * and still the owner's. → -1 not running | -2 another owner | 1.
 */
const PARK = `
local f = redis.call('HMGET', KEYS[1], 'status', 'epoch')
if f[1] ~= 'running' then return -1 end
if f[2] ~= ARGV[1] then return -2 end
redis.call('HSET', KEYS[1], 'parked_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'type', 'run_parked', 'data', ARGV[3])
return 1
`;

/**
 * KEYS: record. ARGV: now. Something a parked run waits for happened (an approval decided or
 * expired): the flag its owner reads after parking, so that a wake-up between its last look and
 * its job reaching the delayed set is not lost. → 1, or 0 when the run is not running.
 */
const WAKE = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'wake', ARGV[1])
return 1
`;

/**
 * KEYS: record, events, event keys. ARGV: epoch, now, retention ms, checkpoint ('' = keep), final
 * status ('' = still running), final field (result|error), final value, then triples of event
 * type, data, once-key ('' = always). → -1 not running (cancelled, finished, expired) | -2 another
 * owner | the ids of the events written. The keys expire `retention` after the finish, never
 * while running (PERSIST also clears the expiry of a run created by an older version).
 */
const WRITE = `
local f = redis.call('HMGET', KEYS[1], 'status', 'epoch')
if f[1] ~= 'running' then return -1 end
if f[2] ~= ARGV[1] then return -2 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'checkpoint', ARGV[4]) end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[5], 'finished_at', ARGV[2], ARGV[6], ARGV[7])
  redis.call('HDEL', KEYS[1], 'checkpoint')
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
local ids = {}
for i = 8, #ARGV, 3 do
  if ARGV[i + 2] == '' or redis.call('SADD', KEYS[3], ARGV[i + 2]) == 1 then
    ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', 'type', ARGV[i], 'data', ARGV[i + 1])
  end
end
for i = 1, 3 do
  if ARGV[5] ~= '' then redis.call('PEXPIRE', KEYS[i], ARGV[3]) else redis.call('PERSIST', KEYS[i]) end
end
return ids
`;

/**
 * KEYS: record, events, event keys. ARGV: now, retention ms, reason, event data.
 * → {'missing'} | {'finished', status} | {'cancelled', checkpoint, owner}
 */
const CANCEL = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'running' then return {'finished', status} end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1], 'updated_at', ARGV[1],
  'error', ARGV[3])
local checkpoint = redis.call('HGET', KEYS[1], 'checkpoint') or ''
redis.call('HDEL', KEYS[1], 'checkpoint')
redis.call('XADD', KEYS[2], '*', 'type', 'cancelled', 'data', ARGV[4])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return {'cancelled', checkpoint, redis.call('HGET', KEYS[1], 'owner') or ''}
`;

/**
 * KEYS: the lock key of the run's BullMQ job (runLockKey). ARGV: the token BullMQ gave this
 * coordinator with the job. → the lock's remaining ms while it is still this token's, else -1. A
 * takeover needs this lock gone first (the stalled check moves only an unlocked job, and the next
 * owner's lock carries its own token), so a yes proves nobody else owns the run yet, and that
 * nobody can before that many ms have passed.
 */
const LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PTTL', KEYS[1]) end
return -1
`;

type Reply = string | number | (string | number)[];

interface RunCommands {
  toolqRunCreate(record: string, ...args: (string | number)[]): Promise<Reply>;
  toolqRunAdmit(active: string, ...args: (string | number)[]): Promise<number>;
  toolqRunClaim(record: string, ...args: (string | number)[]): Promise<string[]>;
  toolqRunWrite(
    record: string,
    events: string,
    eventKeys: string,
    ...args: (string | number)[]
  ): Promise<number | string[]>;
  toolqRunCancel(
    record: string,
    events: string,
    eventKeys: string,
    ...args: (string | number)[]
  ): Promise<string[]>;
  toolqRunLease(lock: string, token: string): Promise<number>;
  toolqRunPark(record: string, events: string, ...args: (string | number)[]): Promise<number>;
  toolqRunWake(record: string, now: number): Promise<number>;
}

export type RunRedis = Redis & RunCommands;

export function withRunScripts(redis: Redis): RunRedis {
  const r = redis as Redis & Partial<RunCommands>;
  if (!r.toolqRunCreate) {
    redis.defineCommand('toolqRunCreate', { numberOfKeys: 1, lua: CREATE });
    redis.defineCommand('toolqRunAdmit', { numberOfKeys: 1, lua: ADMIT });
    redis.defineCommand('toolqRunClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('toolqRunWrite', { numberOfKeys: 3, lua: WRITE });
    redis.defineCommand('toolqRunCancel', { numberOfKeys: 3, lua: CANCEL });
    redis.defineCommand('toolqRunLease', { numberOfKeys: 1, lua: LEASE });
    redis.defineCommand('toolqRunPark', { numberOfKeys: 2, lua: PARK });
    redis.defineCommand('toolqRunWake', { numberOfKeys: 1, lua: WAKE });
  }
  return r as RunRedis;
}
