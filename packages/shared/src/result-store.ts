/**
 * The batch record: a Redis hash per batch, one field per call (`r:<index>`), first write wins,
 * plus the `answered` flag the coordinator sets when it has answered the batch. Workers write a
 * result and append a notification to the coordinator's reply stream in ONE Lua script, so a result
 * is never written without its notification (the reconciliation sweep covers a lost read).
 */
import { z } from 'zod';
import { type CallResult, callResultSchema } from './contract.ts';
import { parseJsonAs } from './json.ts';
import type { Redis } from './redis.ts';

// -1: the record is gone (expired, or lost with a failed-over master): writing would leave a
// fragment without meta that nobody collects. 0: a result is there already (a duplicate delivery,
// or this very command re-sent after a reconnect): no second notification.
const WRITE_RESULT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('XADD', KEYS[2], '*', 'b', ARGV[4], 'i', ARGV[5], 'r', ARGV[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
return 1
`;

// One command, not a MULTI: a transaction caught in a failover ends in EXECABORT (a queued command
// got CLUSTERDOWN or READONLY), which no client retries and which left batches without a record
// (measured); a script is retried and re-sent whole. Re-sent after a reconnect it returns 0.
const CLAIM_BATCH = `
local created = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return created
`;

// The coordinator's own record again, before it re-runs calls a failover lost: the record may be
// gone with them (a worker writes only into an existing record), and a collector must find the
// new jobs. A script for the same reason as CLAIM_BATCH. Results already in it stay.
const REWRITE_META = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

/** How long a batch record outlives its deadline, so a restarted coordinator can still collect it. */
export const BATCH_TTL_AFTER_DEADLINE_MS = 10 * 60_000;
/** A reply stream nobody writes to for this long disappears (a coordinator that went away for good). */
const REPLY_STREAM_TTL_MS = 24 * 3600_000;

export const resultField = (index: number) => `r:${index}`;
export const ANSWERED_FIELD = 'answered';
export const META_FIELD = 'meta';

/** What a batch asked for, so that a restarted coordinator can collect it. */
export const batchMetaSchema = z.object({
  createdAt: z.number(),
  /** The caller's name for the batch and its app (absent in records written before names existed). */
  id: z.string().optional(),
  app: z.string().optional(),
  calls: z.array(
    z.object({
      toolUseId: z.string(),
      tool: z.string(),
      deadline: z.number(),
      timeoutMs: z.number(),
      /** Where the call was queued; absent when it was answered at dispatch (`answer`). */
      pool: z.string().optional(),
      /** The lane of that pool it was sent to, when not the pool's own queue. */
      queue: z.string().optional(),
      /** The BullMQ job that carries it (one job may carry several calls). */
      job: z.string().optional(),
      answer: callResultSchema.optional(),
      /** The approval the call waits for (coordinator/src/approvals): no job until a person approves it. */
      approval: z.string().optional(),
    }),
  ),
});
export type BatchMeta = z.infer<typeof batchMetaSchema>;

/** Writes the batch's meta unless the batch exists; false when it does (a reused batch id). */
export async function claimBatch(
  redis: Redis,
  batchKey: string,
  /** The record, or its JSON already made (a dispatching coordinator keeps that string: lost-calls.ts). */
  meta: BatchMeta | string,
  ttlMs: number,
): Promise<boolean> {
  const json = typeof meta === 'string' ? meta : JSON.stringify(meta);
  const created = await withScripts(redis).toolqClaimBatch(batchKey, META_FIELD, json, ttlMs);
  return created === 1;
}

/** Writes the batch's meta whether or not the record exists (a re-run of lost calls); keeps its results. */
export async function rewriteBatchMeta(
  redis: Redis,
  batchKey: string,
  meta: BatchMeta | string,
  ttlMs: number,
): Promise<void> {
  const json = typeof meta === 'string' ? meta : JSON.stringify(meta);
  await withScripts(redis).toolqRewriteMeta(batchKey, META_FIELD, json, ttlMs);
}

export async function readBatchMeta(redis: Redis, batchKey: string): Promise<BatchMeta | undefined> {
  const raw = await redis.hget(batchKey, META_FIELD);
  return raw === null ? undefined : parseJsonAs(batchMetaSchema, raw);
}

interface WithWriteResult {
  toolqClaimBatch(batchKey: string, field: string, metaJson: string, ttlMs: number): Promise<number>;
  toolqRewriteMeta(batchKey: string, field: string, metaJson: string, ttlMs: number): Promise<number>;
  toolqWriteResult(
    batchKey: string,
    streamKey: string,
    field: string,
    resultJson: string,
    ttlMs: number,
    uid: string,
    index: number,
    streamTtlMs: number,
  ): Promise<number>;
}

function withScripts(redis: Redis): Redis & WithWriteResult {
  const r = redis as Redis & Partial<WithWriteResult>;
  if (!r.toolqWriteResult) {
    redis.defineCommand('toolqWriteResult', { numberOfKeys: 2, lua: WRITE_RESULT });
    redis.defineCommand('toolqClaimBatch', { numberOfKeys: 1, lua: CLAIM_BATCH });
    redis.defineCommand('toolqRewriteMeta', { numberOfKeys: 1, lua: REWRITE_META });
  }
  return r as Redis & WithWriteResult;
}

/** Where a result goes: the contract's `reply` (whose batchId is the dispatch's uid) and the deadline. */
export interface ResultTarget {
  batchId: string;
  index: number;
  batchKey: string;
  streamKey: string;
  deadline: number;
}

/** What became of a result: `duplicate` keeps the first one; `batch_gone` writes nothing. */
export type StoreOutcome = 'written' | 'duplicate' | 'batch_gone';

/** Returns false when the result was not written (a duplicate delivery, or the batch record is gone). */
export async function writeResult(redis: Redis, target: ResultTarget, result: CallResult): Promise<boolean> {
  return (await storeResult(redis, target, result)) === 'written';
}

/** Writes a result into its batch record and notifies the coordinator, both or neither. */
export async function storeResult(
  redis: Redis,
  target: ResultTarget,
  result: CallResult,
): Promise<StoreOutcome> {
  const ttl = Math.max(target.deadline - Date.now(), 0) + BATCH_TTL_AFTER_DEADLINE_MS;
  const written = await withScripts(redis).toolqWriteResult(
    target.batchKey,
    target.streamKey,
    resultField(target.index),
    JSON.stringify(result),
    ttl,
    target.batchId,
    target.index,
    REPLY_STREAM_TTL_MS,
  );
  return written === 1 ? 'written' : written === 0 ? 'duplicate' : 'batch_gone';
}

/** Whether a call still wants running: its batch is not yet answered and it has no result yet. */
export async function isCallStillWanted(redis: Redis, batchKey: string, index: number): Promise<boolean> {
  const [answered, existing] = await redis.hmget(batchKey, ANSWERED_FIELD, resultField(index));
  return answered === null && existing === null;
}

export async function markAnswered(redis: Redis, batchKey: string, ttlMs: number): Promise<void> {
  await redis.multi().hset(batchKey, ANSWERED_FIELD, String(Date.now())).pexpire(batchKey, ttlMs).exec();
}

/** Reads the results present for some calls of a batch (the reconciliation sweep). */
export async function readResults(
  redis: Redis,
  batchKey: string,
  indexes: readonly number[],
): Promise<Map<number, CallResult>> {
  const found = new Map<number, CallResult>();
  if (indexes.length === 0) return found;
  const values = await redis.hmget(batchKey, ...indexes.map(resultField));
  values.forEach((raw, i) => {
    const index = indexes[i];
    if (raw == null || index === undefined) return;
    const parsed = parseCallResult(raw);
    if (parsed) found.set(index, parsed);
  });
  return found;
}

export function parseCallResult(raw: string): CallResult | undefined {
  return parseJsonAs(callResultSchema, raw);
}
