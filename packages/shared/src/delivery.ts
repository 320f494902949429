/**
 * Delivery that follows the tool (docs/delivery.md): the pieces workers and coordinators share.
 *
 * - A call's idempotency key: one per call, the same for every run of it. Derived from what names
 *   the call across the fleet (its app, its batch's name and its tool_use id), not from the
 *   dispatch: a durable run resumed on another coordinator dispatches the same batch name again.
 * - The start marker of an at-most-once call: claimed (SET NX) before the tool starts. Whatever
 *   delivers the call again afterwards (BullMQ's stalled-job recovery, a give-back, a re-run)
 *   finds it and answers "outcome unknown" instead of running it.
 * - The jobs each worker is running, with their BullMQ lock tokens: when the worker stops beating, a coordinator's sweep (coordinator/src/delivery/dead-workers.ts) settles them in
 *   seconds instead of at BullMQ's lock expiry.
 */
import { createHash } from 'node:crypto';
import { type CallResult, CONTRACT_VERSION, type ParsedJobData } from './contract.ts';
import type { Keys } from './keys.ts';
import type { Redis } from './redis.ts';
import { messages } from './result-encoding.ts';
import { BATCH_TTL_AFTER_DEADLINE_MS } from './result-store.ts';

/** The key of one call: its app, its batch's name (the caller's, or the dispatch's uid) and its tool_use id. */
export function idempotencyKeyFor(call: { app: string; batchName: string; toolUseId: string }): string {
  return idempotencyKeysOf(call)(call.toolUseId);
}

/**
 * The keys of one batch's calls, by tool_use id: idempotencyKeyFor's, with the batch's part hashed
 * once (a copy of that hash per call costs half a fresh one).
 */
export function idempotencyKeysOf(batch: { app: string; batchName: string }): (toolUseId: string) => string {
  const base = createHash('sha256').update(`${batch.app}\n${batch.batchName}\n`);
  return (toolUseId) => base.copy().update(toolUseId).digest('hex').slice(0, 32);
}

/** A job's call's key: the one its producer set, else derived from the job (plain producers). */
export function idempotencyKeyOf(data: ParsedJobData, jobId: string): string {
  if (data.idempotencyKey) return data.idempotencyKey;
  return idempotencyKeyFor({
    app: data.app ?? 'default',
    batchName: data.reply?.batchId ?? jobId,
    toolUseId: data.toolUseId,
  });
}

/** How long a start marker is kept: as long as the call's batch record, so every re-delivery finds it. */
export function startMarkerTtlMs(deadline: number, now = Date.now()): number {
  return Math.max(deadline - now, 0) + BATCH_TTL_AFTER_DEADLINE_MS;
}

/** Claims the start of an at-most-once call for `workerId`; false when it was started before. */
export async function claimStart(
  redis: Redis,
  keys: Keys,
  idempotencyKey: string,
  workerId: string,
  ttlMs: number,
): Promise<boolean> {
  return (await redis.set(keys.started(idempotencyKey), workerId, 'PX', ttlMs, 'NX')) === 'OK';
}

/** Removes the start marker `workerId` claimed (and no other worker's). */
export async function releaseStart(redis: Redis, keys: Keys, idempotencyKey: string, workerId: string) {
  await redis.eval(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    1,
    keys.started(idempotencyKey),
    workerId,
  );
}

/** The worker that started the call, or null when no at-most-once run of it started. */
export function startedBy(redis: Redis, keys: Keys, idempotencyKey: string): Promise<string | null> {
  return redis.get(keys.started(idempotencyKey));
}

/** A worker's running-jobs entry lives at most this long without a write (a sweep deletes it sooner). */
const RUNNING_JOBS_TTL_MS = 24 * 3600_000;

// Removals first: a job given back and taken again by the same worker keeps its new token.
const WRITE_RUNNING = `
local removals = tonumber(ARGV[2])
for i = 3, 2 + removals do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 3 + removals, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 2 + removals then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
`;

interface WithRunningScript {
  toolqWriteRunning(key: string, ...args: (string | number)[]): Promise<number>;
}

export function runningJobField(queue: string, jobId: string): string {
  return `${queue} ${jobId}`;
}

/**
 * Updates the jobs this worker notes as running, in one command: `added` (field → lock token, see
 * runningJobField) and `removed` fields. The worker batches these (worker/src/delivery/guard.ts).
 */
export async function writeRunningJobs(
  redis: Redis,
  keys: Keys,
  workerId: string,
  added: ReadonlyMap<string, string>,
  removed: ReadonlySet<string>,
): Promise<void> {
  if (added.size === 0 && removed.size === 0) return;
  const r = redis as Redis & Partial<WithRunningScript>;
  if (!r.toolqWriteRunning) redis.defineCommand('toolqWriteRunning', { numberOfKeys: 1, lua: WRITE_RUNNING });
  await (r as Redis & WithRunningScript).toolqWriteRunning(
    keys.runningJobs(workerId),
    RUNNING_JOBS_TTL_MS,
    removed.size,
    ...removed,
    ...[...added].flat(),
  );
}

/** The jobs a worker noted as running: queue, job id and the lock token it held them under. */
export async function readRunningJobs(
  redis: Redis,
  keys: Keys,
  workerId: string,
): Promise<{ queue: string; jobId: string; token: string }[]> {
  const all = await redis.hgetall(keys.runningJobs(workerId));
  return Object.entries(all).flatMap(([field, token]) => {
    const space = field.indexOf(' ');
    if (space <= 0) return [];
    return [{ queue: field.slice(0, space), jobId: field.slice(space + 1), token }];
  });
}

/** The answer of an at-most-once call that will not run (again): outcome `unknown`. */
export function interruptedResult(
  data: Pick<ParsedJobData, 'toolUseId' | 'tool' | 'enqueuedAt'>,
  workerId: string,
  why: string,
): CallResult {
  const now = Date.now();
  return {
    v: CONTRACT_VERSION,
    toolUseId: data.toolUseId,
    tool: data.tool,
    outcome: 'unknown',
    content: messages.interrupted(data.tool, why),
    isError: true,
    worker: workerId,
    attempts: 0,
    enqueuedAt: data.enqueuedAt,
    startedAt: now,
    finishedAt: now,
  };
}
