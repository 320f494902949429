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
  type CoordinatorMetrics,
  createKeys,
  needsApproval,
  type Redis,
  randomHex,
  readBatchMeta,
  readBatchOwner,
} from '@toolq/shared/internal';
import { Queue } from 'bullmq';
import type { BarrierCall } from '../barrier.ts';
import type { ToolLookup } from '../catalog.ts';
import { buildJobData, type JobQueues, singleCallJobId } from '../job-queues.ts';
import { RUNS_QUEUE } from '../runs/run-keys.ts';
import { applyEnd } from './apply.ts';
import {
  APPROVAL_DEFAULTS,
  type ApprovalOptions,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalVerdict,
} from './approval-options.ts';
import { APPLY_RETRY_MS, ApprovalStore, type StoredApproval } from './approval-store.ts';

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
  private runs: Queue | undefined;
  private sweeping = false;
  private lastSweepAt = 0;

  constructor(
    private readonly deps: {
      redis: Redis;
      prefix: string;
      jobs: JobQueues;
      logger: Logger;
      metrics: CoordinatorMetrics;
    },
  ) {
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
            const data = {
              at: Date.now(),
              approval_id: a.approvalId,
              tool: a.tool,
              tool_use_id: a.toolUseId,
              input: a.input,
              batch_id: a.batchId,
              expires_at: a.expiresAt,
            };
            await this.store.appendRunEvent(a.runId, 'approval_requested', data, `${a.approvalId}:requested`);
          }
          approval?.onRequested?.(publicRequest(a));
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
        .then((closed) => {
          if (closed !== 'ok') return;
          this.deps.metrics.approvalsDecided.inc({ tool: a.tool, status: 'cancelled' });
          return this.store.unindex(a);
        })
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
    // Due for the sweep soon, before the decision: if this process dies before acting on it, the
    // sweep (any coordinator) acts in its place, not only at the expiry.
    const now = Date.now();
    if (found?.app === app && found.status === 'pending')
      await this.store.dueAt(approvalId, Math.min(now + APPLY_RETRY_MS, found.expiresAt));
    const answer = await this.store.decide(app, approvalId, status, by, now, verdict.reason ?? '');
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
      const closed = await this.store.close(id, 'expired', now, true);
      // Gone from Redis (its retention passed after a crash between deciding and unindexing).
      if (closed === 'missing') await this.store.forget(id);
      else if (closed !== 'pending') await this.settle(id);
      else {
        // Made due by a decision that did not happen (it lost to another): due at its expiry again.
        const a = await this.store.get(id);
        if (a?.status === 'pending') await this.store.dueAt(id, a.expiresAt);
      }
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
   * Acts on an approval's end, once across the fleet (CLAIM_APPLY in approval-store.ts): the
   * approved call's job goes out with a deadline from now, a refusal or an expiry becomes the
   * call's result, the run hears of it and is woken if parked. An applier that dies half-way
   * leaves it to the expiry sweep, which sees it due again APPLY_RETRY_MS after the decision.
   */
  private async settle(approvalId: string): Promise<StoredApproval | undefined> {
    const a = await this.store.get(approvalId);
    if (!a || a.status === 'pending') return a;
    const claim = await this.store.claimApply(approvalId);
    if (claim === 'done') await this.store.unindex(a);
    if (claim !== 'claimed') return a; // done, or another applier's lease still runs
    await applyEnd({ ...this.deps, store: this.store, runs: () => this.runsQueue() }, a);
    await this.store.markApplied(approvalId);
    this.deps.metrics.approvalsDecided.inc({ tool: a.tool, status: a.status });
    await this.store.unindex(a);
    return a;
  }

  /** The runs queue, to wake a parked run (created on first use: only runs' approvals need it). */
  private runsQueue(): Queue {
    this.runs ??= new Queue(RUNS_QUEUE, { connection: this.deps.redis, prefix: this.deps.prefix });
    return this.runs;
  }

  async close(): Promise<void> {
    await this.runs?.close();
  }
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
