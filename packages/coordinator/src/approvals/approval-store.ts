/**
 * Approvals in Redis: one hash per approval (the request, the job it starts when approved, where
 * a refusal is written, and the decision), a sorted set per app of the pending ones (for listing)
 * and one of every pending approval by expiry (for the coordinators' expiry sweep). A decision is
 * one Lua script on the approval's own hash, so that exactly one of two deciders (or a decider and
 * the expiry) wins on any coordinator; what follows from it (starting the job, writing a refusal,
 * the run's event) is idempotent and guarded by the hash's `applied` flag.
 */
import type { JobData } from '@toolq/shared';
import { parseJsonAs, type Redis, type ResultTarget } from '@toolq/shared/internal';
import { z } from 'zod';
import { runKeys } from '../runs/run-keys.ts';
import {
  APPROVAL_DEFAULTS,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalStatus,
} from './approval-options.ts';

// → 'ok' | 'missing' (unknown id, or another app's) | the status it already has ('expired' when
// its time was up: the expiry wins even if no sweep has marked it yet).
const DECIDE = `
local f = redis.call('HMGET', KEYS[1], 'app', 'status', 'expires_at')
if not f[1] or f[1] ~= ARGV[1] then return 'missing' end
if f[2] ~= 'pending' then return f[2] end
if tonumber(f[3]) <= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'status', 'expired', 'decided_at', f[3])
  return 'expired'
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decided_by', ARGV[3], 'decided_at', ARGV[4], 'reason', ARGV[5])
return 'ok'
`;

// Ends a pending approval without a decision: 'expired' (only once due, unless ARGV[3] is '0') or
// 'cancelled' (its batch was answered without it). → 'ok' | 'missing' | its status.
const CLOSE = `
local f = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
if not f[1] then return 'missing' end
if f[1] ~= 'pending' then return f[1] end
if ARGV[3] == '1' and tonumber(f[2]) > tonumber(ARGV[2]) then return 'pending' end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'decided_at', ARGV[2])
return 'ok'
`;

// Another coordinator's run: its event only while the run is still running, once per key (an
// approval applied again after its first applier died writes no second event). Keys in its slot.
const RUN_EVENT = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('SADD', KEYS[3], ARGV[3]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'type', ARGV[1], 'data', ARGV[2])
return 1
`;

// Who acts on an approval's end (sends the approved job, writes the refusal): one applier at a
// time, for APPLY_LEASE_MS; once done, `applied` is set and nobody acts again. An applier that
// dies leaves the lease to lapse, and the expiry sweep (which sees the approval due again,
// APPLY_RETRY_MS after the decision) acts in its place: the job's id is the call's own, so a
// second send of a job that exists is a no-op, and one whose result is written is not sent.
// → 'claimed' | 'busy' (another applier's lease runs) | 'done' | 'missing'
const CLAIM_APPLY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HEXISTS', KEYS[1], 'applied') == 1 then return 'done' end
local lease = tonumber(redis.call('HGET', KEYS[1], 'applying') or '0')
if lease > tonumber(ARGV[1]) then return 'busy' end
redis.call('HSET', KEYS[1], 'applying', tostring(tonumber(ARGV[1]) + tonumber(ARGV[2])))
return 'claimed'
`;

/** How long an applier has to act on an approval's end before the sweep may act in its place. */
export const APPLY_LEASE_MS = 10_000;
/** A decided approval is due for the sweep this long after its decision, in case its decider dies. */
export const APPLY_RETRY_MS = 5_000;

// The decision beside the batch's results, only while the record exists (no fragment without meta).
const ON_BATCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/** The job an approval starts, and where its refusal or expiry is written. */
export interface HeldCall {
  job: { queue: string; jobId: string; data: JobData };
  target: ResultTarget;
  timeoutMs: number;
}

export interface StoredApproval extends ApprovalRequest, HeldCall {
  status: ApprovalStatus;
  decidedBy?: string;
  decidedAt?: number;
  reason?: string;
}

const heldSchema = z.object({
  job: z.object({
    queue: z.string(),
    jobId: z.string(),
    data: z.custom<JobData>((v) => typeof v === 'object'),
  }),
  target: z.object({
    batchId: z.string(),
    index: z.number(),
    batchKey: z.string(),
    streamKey: z.string(),
    deadline: z.number(),
  }),
  timeoutMs: z.number(),
});

interface Scripts {
  toolqApprovalDecide(
    key: string,
    app: string,
    status: string,
    by: string,
    now: number,
    reason: string,
  ): Promise<string>;
  toolqApprovalClose(key: string, status: string, now: number, onlyIfDue: string): Promise<string>;
  toolqApprovalRunEvent(
    record: string,
    events: string,
    eventKeys: string,
    type: string,
    data: string,
    once: string,
  ): Promise<number>;
  toolqApprovalClaimApply(key: string, now: number, leaseMs: number): Promise<string>;
  toolqApprovalOnBatch(batchKey: string, field: string, json: string): Promise<number>;
}

const APPROVAL_FIELD_PREFIX = 'approval:';

export class ApprovalStore {
  private readonly redis: Redis & Scripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    const r = redis as Redis & Partial<Scripts>;
    if (!r.toolqApprovalDecide) {
      redis.defineCommand('toolqApprovalDecide', { numberOfKeys: 1, lua: DECIDE });
      redis.defineCommand('toolqApprovalClose', { numberOfKeys: 1, lua: CLOSE });
      redis.defineCommand('toolqApprovalRunEvent', { numberOfKeys: 3, lua: RUN_EVENT });
      redis.defineCommand('toolqApprovalClaimApply', { numberOfKeys: 1, lua: CLAIM_APPLY });
      redis.defineCommand('toolqApprovalOnBatch', { numberOfKeys: 1, lua: ON_BATCH });
    }
    this.redis = r as Redis & Scripts;
  }

  recordKey(id: string): string {
    return `${this.prefix}:approval:${id}`;
  }

  private pendingKey(app: string): string {
    return `${this.prefix}:approvals:pending:${app}`;
  }

  private expiringKey(): string {
    return `${this.prefix}:approvals:expiring`;
  }

  /** A tool's pending approvals by expiry (toolq_approvals_pending), and the set of such tools. */
  private toolKey(tool: string): string {
    return `${this.prefix}:approvals:pending-tool:${tool}`;
  }

  private toolsKey(): string {
    return `${this.prefix}:approvals:tools`;
  }

  /** The record first: an id in an index always has its record (or had: it expired). */
  async create(a: StoredApproval): Promise<void> {
    const key = this.recordKey(a.approvalId);
    const fields: Record<string, string> = {
      app: a.app,
      tool: a.tool,
      input: JSON.stringify(a.input),
      tool_use_id: a.toolUseId,
      batch_id: a.batchId,
      requested_at: String(a.requestedAt),
      expires_at: String(a.expiresAt),
      status: a.status,
      held: JSON.stringify({ job: a.job, target: a.target, timeoutMs: a.timeoutMs }),
      ...(a.runId === undefined ? {} : { run_id: a.runId }),
    };
    const keepMs = Math.max(a.expiresAt - Date.now(), 0) + APPROVAL_DEFAULTS.retentionMs;
    await this.redis.multi().hset(key, fields).pexpire(key, keepMs).exec();
    await this.redis.zadd(this.pendingKey(a.app), a.expiresAt, a.approvalId);
    await this.redis.zadd(this.expiringKey(), a.expiresAt, a.approvalId);
    await this.redis.zadd(this.toolKey(a.tool), a.expiresAt, a.approvalId);
    await this.redis.sadd(this.toolsKey(), a.tool);
  }

  /**
   * Pending approvals by tool, fleet-wide: those not yet due (an expired one not yet swept is no
   * longer waiting). An entry left behind by a crash between the indexes is dropped an hour after
   * its expiry. One ZCOUNT per tool that ever needed approval (the catalog's tools at most).
   */
  async pendingByTool(now: number): Promise<Map<string, number>> {
    const tools = await this.redis.smembers(this.toolsKey());
    const counts = await Promise.all(
      tools.map(async (tool) => {
        const key = this.toolKey(tool);
        await this.redis.zremrangebyscore(key, '-inf', now - APPROVAL_DEFAULTS.retentionMs);
        return this.redis.zcount(key, `(${now}`, '+inf');
      }),
    );
    return new Map(tools.map((tool, i) => [tool, counts[i] ?? 0]));
  }

  async get(id: string): Promise<StoredApproval | undefined> {
    return parseRecord(id, await this.redis.hgetall(this.recordKey(id)));
  }

  /** The app's approvals still pending and not yet due, soonest expiry first. */
  async listPending(app: string, now: number): Promise<StoredApproval[]> {
    const ids = await this.redis.zrangebyscore(this.pendingKey(app), `(${now}`, '+inf', 'LIMIT', 0, 500);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is StoredApproval => r?.status === 'pending' && r.app === app);
  }

  decide(app: string, id: string, status: 'approved' | 'denied', by: string, now: number, reason: string) {
    return this.redis.toolqApprovalDecide(this.recordKey(id), app, status, by, now, reason);
  }

  close(id: string, status: 'expired' | 'cancelled', now: number, onlyIfDue: boolean): Promise<string> {
    return this.redis.toolqApprovalClose(this.recordKey(id), status, now, onlyIfDue ? '1' : '0');
  }

  /** Whether the caller acts on the approval's end now (start the job, write the refusal): CLAIM_APPLY. */
  claimApply(id: string, now = Date.now()): Promise<'claimed' | 'busy' | 'done' | 'missing'> {
    return this.redis.toolqApprovalClaimApply(this.recordKey(id), now, APPLY_LEASE_MS) as Promise<
      'claimed' | 'busy' | 'done' | 'missing'
    >;
  }

  /** Its end is acted on: nobody acts again. */
  async markApplied(id: string): Promise<void> {
    await this.redis.hset(this.recordKey(id), 'applied', String(Date.now()));
  }

  /**
   * Due for the expiry sweep at `at` (only while indexed): before a decision, so that the sweep
   * acts on it if its decider dies before it does; or back at its expiry when it stays pending.
   */
  async dueAt(id: string, at: number): Promise<void> {
    await this.redis.zadd(this.expiringKey(), 'XX', at, id);
  }

  /** Out of the indexes, once its end is acted on. */
  async unindex(a: { approvalId: string; app: string; tool: string }): Promise<void> {
    await this.redis.zrem(this.pendingKey(a.app), a.approvalId);
    await this.redis.zrem(this.toolKey(a.tool), a.approvalId);
    await this.redis.zrem(this.expiringKey(), a.approvalId);
  }

  /** An id whose record is gone: out of the expiry index (the app's index skips it when listing). */
  async forget(id: string): Promise<void> {
    await this.redis.zrem(this.expiringKey(), id);
  }

  /** Ids of approvals whose time is up, or that were decided but not yet acted on (their decider died). */
  due(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.expiringKey(), '-inf', now, 'LIMIT', 0, limit);
  }

  /** A run's status (`running`, `done`, …), undefined when its record is gone. */
  async runStatus(runId: string): Promise<string | undefined> {
    return (await this.redis.hget(runKeys(this.prefix, runId).record, 'status')) ?? undefined;
  }

  /** The event once per `once` key (an approval's id and event type). */
  async appendRunEvent(
    runId: string,
    type: string,
    data: Record<string, unknown>,
    once: string,
  ): Promise<void> {
    const k = runKeys(this.prefix, runId);
    const json = JSON.stringify({ type, ...data });
    await this.redis.toolqApprovalRunEvent(k.record, k.events, k.eventKeys, type, json, once);
  }

  async recordOnBatch(batchKey: string, index: number, outcome: ApprovalOutcome): Promise<void> {
    await this.redis.toolqApprovalOnBatch(
      batchKey,
      `${APPROVAL_FIELD_PREFIX}${index}`,
      JSON.stringify(outcome),
    );
  }

  /** The decisions recorded in a batch's record, for the calls given. */
  async outcomesOnBatch(batchKey: string, indexes: readonly number[]): Promise<ApprovalOutcome[]> {
    if (indexes.length === 0) return [];
    const raw = await this.redis.hmget(batchKey, ...indexes.map((i) => `${APPROVAL_FIELD_PREFIX}${i}`));
    return raw.flatMap((value) => {
      if (value === null) return [];
      const parsed = parseJsonAs(outcomeSchema, value);
      return parsed ? [parsed as ApprovalOutcome] : [];
    });
  }
}

const outcomeSchema = z.object({
  approvalId: z.string(),
  toolUseId: z.string(),
  tool: z.string(),
  status: z.enum(['approved', 'denied', 'expired', 'cancelled']),
  decidedBy: z.string().optional(),
  decidedAt: z.number().optional(),
  reason: z.string().optional(),
});

function parseRecord(id: string, h: Record<string, string>): StoredApproval | undefined {
  if (!h.app || !h.status || !h.held) return undefined;
  const held = parseJsonAs(heldSchema, h.held);
  if (!held) return undefined;
  let input: unknown;
  try {
    input = JSON.parse(h.input ?? 'null');
  } catch {
    input = null;
  }
  return {
    approvalId: id,
    app: h.app,
    tool: h.tool ?? '',
    input,
    toolUseId: h.tool_use_id ?? '',
    batchId: h.batch_id ?? '',
    ...(h.run_id ? { runId: h.run_id } : {}),
    requestedAt: Number(h.requested_at),
    expiresAt: Number(h.expires_at),
    status: h.status as ApprovalStatus,
    ...(h.decided_by ? { decidedBy: h.decided_by } : {}),
    ...(h.decided_at ? { decidedAt: Number(h.decided_at) } : {}),
    ...(h.reason !== undefined ? { reason: h.reason } : {}),
    ...(held as HeldCall),
  };
}
