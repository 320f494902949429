/**
 * Approvals in the Dispatcher: which calls of a batch wait for a person (held out of the batch's
 * jobs, their deadline pushed past the approval's expiry), recording them, deciding them from
 * any coordinator, and acting on the end of each: an approved call's job is sent by whoever
 * decided it, a refusal or an expiry is written into the batch record like a worker's result, so
 * the batch's waiter (its dispatcher, or any coordinator collecting it after a crash) learns of it
 * the way it learns of any result. Nothing waits in a process: a coordinator that dies loses
 * nothing, and a pending approval costs only its Redis hash and two index entries.
 */
import { type Logger, ToolqError } from '@toolq/shared';
import {
  type BatchMeta,
  createKeys,
  isCallStillWanted,
  needsApproval,
  type Redis,
  randomHex,
  readBatchMeta,
  readBatchOwner,
  storeResult,
} from '@toolq/shared/internal';
import { type BarrierCall, coordinatorResult } from '../barrier.ts';
import type { ToolLookup } from '../catalog.ts';
import { buildJobData, type JobQueues, singleCallJobId } from '../job-queues.ts';
import {
  APPROVAL_DEFAULTS,
  type ApprovalOptions,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalVerdict,
} from './approval-options.ts';
import { ApprovalStore, type StoredApproval } from './approval-store.ts';

/** The calls of one batch that wait for approval. */
export interface HeldCalls {
  indexes: number[];
  approvals: StoredApproval[];
  batchKey: string;
}

/** Time past an approval's expiry before the batch's own deadline for the call: room for the expiry sweep. */
const EXPIRY_GRACE_MS = 5_000;

export class Approvals {
  readonly store: ApprovalStore;
  private sweeping = false;
  private lastSweepAt = 0;

  constructor(private readonly deps: { redis: Redis; prefix: string; jobs: JobQueues; logger: Logger }) {
    this.store = new ApprovalStore(deps.redis, deps.prefix);
  }

  /**
   * The dispatcher's hook, after planning and before the jobs: takes the calls that need approval
   * out of the batch's jobs (their lookup becomes undefined for planJobs) and gives each a deadline
   * past its approval's expiry, in the barrier and the record. Undefined when no call waits.
   */
  hold(plan: {
    uid: string;
    app: string;
    batchName: string;
    toolUses: readonly { id: string; name: string; input: unknown }[];
    calls: BarrierCall[];
    meta: BatchMeta;
    lookups: (ToolLookup | undefined)[];
    batchKey: string;
    streamKey: string;
    approval: ApprovalOptions | undefined;
    jobOptions: Parameters<typeof buildJobData>[0]['options'];
  }): HeldCalls | undefined {
    const { calls, meta, lookups, approval } = plan;
    const startedAt = meta.createdAt;
    const asked = new Set(approval?.tools ?? []);
    const timeout =
      approval?.timeoutMs ??
      (approval?.runId ? APPROVAL_DEFAULTS.runTimeoutMs : APPROVAL_DEFAULTS.batchTimeoutMs);
    const held: HeldCalls = { indexes: [], approvals: [], batchKey: plan.batchKey };
    calls.forEach((call, index) => {
      const lookup = lookups[index];
      const use = plan.toolUses[index];
      if (lookup?.kind !== 'ok' || !use) return;
      if (!asked.has(use.name) && !needsApproval(lookup.spec.approval, use.input)) return;
      const approvalId = `apr_${randomHex(24)}`;
      const expiresAt = startedAt + timeout;
      const runDeadline = expiresAt + call.timeoutMs;
      const data = buildJobData({
        call: { ...call, deadline: runDeadline },
        input: use.input,
        reply: { batchId: plan.uid, index, batchKey: plan.batchKey, streamKey: plan.streamKey },
        options: plan.jobOptions,
      });
      call.deadline = runDeadline + EXPIRY_GRACE_MS;
      const recorded = meta.calls[index];
      if (recorded) {
        recorded.deadline = call.deadline;
        recorded.approval = approvalId;
        if (lookup.queue !== lookup.pool) recorded.queue = lookup.queue;
      }
      lookups[index] = undefined;
      held.indexes.push(index);
      held.approvals.push({
        approvalId,
        app: plan.app,
        tool: use.name,
        input: use.input,
        toolUseId: use.id,
        batchId: plan.batchName,
        ...(approval?.runId === undefined ? {} : { runId: approval.runId }),
        requestedAt: startedAt,
        expiresAt,
        status: 'pending',
        job: { queue: lookup.queue, jobId: singleCallJobId(plan.uid, index), data },
        target: {
          batchId: plan.uid,
          index,
          batchKey: plan.batchKey,
          streamKey: plan.streamKey,
          deadline: call.deadline,
        },
        timeoutMs: call.timeoutMs,
      });
    });
    return held.indexes.length > 0 ? held : undefined;
  }

  /** Records the held calls' approvals (after the batch's record), tells the run, asks the handler. */
  request(held: HeldCalls, approval: ApprovalOptions | undefined): void {
    for (const a of held.approvals) {
      this.store
        .create(a)
        .then(async () => {
          if (a.runId) {
            await this.store.appendRunEvent(a.runId, 'approval_requested', {
              at: Date.now(),
              approval_id: a.approvalId,
              tool: a.tool,
              tool_use_id: a.toolUseId,
              input: a.input,
              batch_id: a.batchId,
              expires_at: a.expiresAt,
            });
          }
          const handler = approval?.handler;
          if (!handler) return;
          const verdict = await handler(publicRequest(a));
          if (verdict) await this.decide(a.app, a.approvalId, { by: 'handler', ...verdict });
        })
        .catch((err: Error) =>
          this.deps.logger.warn({ err: err.message, approval: a.approvalId }, 'approval request failed'),
        );
    }
  }

  /**
   * The batch was answered (cancelled, aborted): its approvals still pending can no longer start
   * anything. Not a run's: its batch ends here too when its coordinator hands it over, and the
   * successor collects the batch; a run's approvals end with the run instead (list(), settle()).
   */
  batchEnded(held: HeldCalls): void {
    const now = Date.now();
    for (const a of held.approvals) {
      if (a.runId) continue;
      this.store
        .close(a.approvalId, 'cancelled', now, false)
        .then((closed) => (closed === 'ok' ? this.store.unindex(a) : undefined))
        .catch((err: Error) =>
          this.deps.logger.warn({ err: err.message, approval: a.approvalId }, 'could not cancel approval'),
        );
    }
  }

  async list(app: string): Promise<ApprovalRequest[]> {
    const pending = await this.store.listPending(app, Date.now());
    const live = await Promise.all(pending.map((a) => this.runGoesOn(a)));
    const ended = pending.filter((_, i) => !live[i]);
    // A run that finished or was cancelled no longer waits: its approvals are closed, not listed.
    for (const a of ended) {
      this.store
        .close(a.approvalId, 'cancelled', Date.now(), false)
        .then(() => this.settle(a.approvalId))
        .catch((err: Error) => this.deps.logger.warn({ err: err.message }, 'could not close approval'));
    }
    return pending.filter((_, i) => live[i]).map(publicRequest);
  }

  /** A batch's approval, or a run's whose run is still running. */
  private async runGoesOn(a: { runId?: string }): Promise<boolean> {
    return a.runId === undefined || (await this.store.runStatus(a.runId)) === 'running';
  }

  /**
   * A decision, from any coordinator: NOT_FOUND for an unknown id or another app's,
   * APPROVAL_DECIDED when it has one already (or expired). Resolves once its effect is in Redis
   * (the job sent, or the refusal written).
   */
  async decide(app: string, approvalId: string, verdict: ApprovalVerdict): Promise<StoredApproval> {
    const status = verdict.decision === 'approve' ? 'approved' : 'denied';
    const by = verdict.by ?? 'unknown';
    const found = await this.store.get(approvalId);
    if (found?.app === app && found.status === 'pending' && !(await this.runGoesOn(found))) {
      await this.store.close(approvalId, 'cancelled', Date.now(), false);
      await this.settle(approvalId);
      throw new ToolqError(
        'APPROVAL_DECIDED',
        `approval ${approvalId} is cancelled: its run is no longer running`,
      );
    }
    const answer = await this.store.decide(app, approvalId, status, by, Date.now(), verdict.reason ?? '');
    if (answer === 'missing')
      throw new ToolqError('NOT_FOUND', `no approval ${approvalId} is pending for this app`);
    if (answer !== 'ok') {
      if (answer === 'expired') await this.settle(approvalId);
      throw new ToolqError(
        'APPROVAL_DECIDED',
        `approval ${approvalId} is ${answer} already: it is decided once`,
      );
    }
    const decided = await this.settle(approvalId);
    if (!decided) throw new ToolqError('NOT_FOUND', `approval ${approvalId} is gone (expired from Redis)`);
    return decided;
  }

  /** Called often (the Dispatcher's sweep timer); sweeps once per APPROVAL_DEFAULTS.expirySweepMs. */
  tick(): void {
    const now = Date.now();
    if (this.sweeping || now - this.lastSweepAt < APPROVAL_DEFAULTS.expirySweepMs) return;
    this.sweeping = true;
    this.lastSweepAt = now;
    this.sweep()
      .catch((err: Error) => this.deps.logger.warn({ err: err.message }, 'approval expiry sweep failed'))
      .finally(() => {
        this.sweeping = false;
      });
  }

  /** Every coordinator, every second: approvals whose time is up expire (atomically: a decision may win). */
  async sweep(): Promise<void> {
    const now = Date.now();
    for (const id of await this.store.due(now, 100)) {
      // Gone from Redis (its retention passed after a crash between deciding and unindexing).
      if ((await this.store.close(id, 'expired', now, true)) === 'missing') await this.store.forget(id);
      else await this.settle(id);
    }
  }

  /** The decisions recorded in a batch's record. */
  outcomes(batchKey: string, indexes: readonly number[]): Promise<ApprovalOutcome[]> {
    return this.store.outcomesOnBatch(batchKey, indexes);
  }

  /** The decisions recorded in the record of the app's batch of this name (a collected batch's answer). */
  async outcomesOfBatch(app: string, batchName: string): Promise<ApprovalOutcome[]> {
    const keys = createKeys(this.deps.prefix);
    const owner = await readBatchOwner(this.deps.redis, keys.batchName(app, batchName));
    if (!owner) return [];
    const batchKey = keys.batch(owner.coordinatorId, owner.uid);
    const meta = await readBatchMeta(this.deps.redis, batchKey);
    const held = meta?.calls.flatMap((call, index) => (call.approval ? [index] : [])) ?? [];
    return this.store.outcomesOnBatch(batchKey, held);
  }

  /**
   * Acts on an approval's end, once across the fleet (the `applied` flag): the approved call's job
   * goes out with a deadline from now; a refusal or an expiry becomes the call's result.
   */
  private async settle(approvalId: string): Promise<StoredApproval | undefined> {
    const a = await this.store.get(approvalId);
    if (!a || a.status === 'pending') return a;
    if (!(await this.store.claimApply(approvalId))) {
      await this.store.unindex(a);
      return a;
    }
    const { redis, jobs } = this.deps;
    const status = a.status;
    const outcome: ApprovalOutcome = {
      approvalId,
      toolUseId: a.toolUseId,
      tool: a.tool,
      status,
      ...(a.decidedBy === undefined ? {} : { decidedBy: a.decidedBy }),
      ...(a.decidedAt === undefined ? {} : { decidedAt: a.decidedAt }),
      ...(a.reason ? { reason: a.reason } : {}),
    };
    await this.store.recordOnBatch(a.target.batchKey, a.target.index, outcome);
    if (status === 'approved') {
      const wanted = await isCallStillWanted(redis, a.target.batchKey, a.target.index);
      if (wanted && (await this.runGoesOn(a))) {
        const now = Date.now();
        const data = { ...a.job.data, deadline: now + a.timeoutMs, enqueuedAt: now };
        const failed = await jobs.enqueue([
          { queue: a.job.queue, jobId: a.job.jobId, indexes: [a.target.index], data },
        ]);
        for (const { error } of failed) {
          const message = `the call was approved but could not be enqueued: ${error.message}`;
          await storeResult(redis, a.target, coordinatorResult(a, 'error', message));
        }
      }
    } else if (status === 'denied' || status === 'expired') {
      await storeResult(redis, a.target, coordinatorResult(a, 'error', refusal(a)));
    }
    if (a.runId && status !== 'cancelled') {
      const data =
        status === 'expired'
          ? {
              at: Date.now(),
              approval_id: approvalId,
              tool: a.tool,
              tool_use_id: a.toolUseId,
              expired_at: a.decidedAt,
            }
          : {
              at: Date.now(),
              approval_id: approvalId,
              tool: a.tool,
              tool_use_id: a.toolUseId,
              decision: status === 'approved' ? 'approve' : 'deny',
              decided_by: a.decidedBy ?? null,
              decided_at: a.decidedAt ?? null,
              reason: a.reason ?? '',
            };
      await this.store
        .appendRunEvent(a.runId, status === 'expired' ? 'approval_expired' : 'approval_decided', data)
        .catch((err: Error) =>
          this.deps.logger.warn({ err: err.message }, 'could not write the approval event'),
        );
    }
    await this.store.unindex(a);
    return a;
  }
}

/** What the model reads for a call that never ran. An expiry never reads as a refusal. */
function refusal(a: StoredApproval): string {
  if (a.status === 'expired') {
    const seconds = Math.round((a.expiresAt - a.requestedAt) / 100) / 10;
    return (
      `The approval request for this ${a.tool} call expired after ${seconds} s: nobody decided in time ` +
      '(it was not refused). The call was not run.'
    );
  }
  const reason = a.reason ? `: ${a.reason}` : ' (no reason given)';
  return `A person (${a.decidedBy ?? 'unknown'}) denied this ${a.tool} call${reason}. The call was not run.`;
}

function publicRequest(a: StoredApproval): ApprovalRequest {
  return {
    approvalId: a.approvalId,
    app: a.app,
    tool: a.tool,
    input: a.input,
    toolUseId: a.toolUseId,
    batchId: a.batchId,
    ...(a.runId === undefined ? {} : { runId: a.runId }),
    requestedAt: a.requestedAt,
    expiresAt: a.expiresAt,
  };
}
