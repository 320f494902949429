/**
 * What an approval's end does, for its one applier at a time (Approvals.settle claims it): the
 * decision beside the batch's results, the approved call's job (its id is the call's own, so a
 * second send while it exists is a no-op, and none is sent once its result is written), or the
 * refusal or expiry as the call's result; then the run's event (once per approval) and, for a
 * parked run, its wake-up. Every step may be done twice (an applier that died half-way, then the
 * sweep) with the same effect as once.
 */
import type { Logger } from '@toolq/shared';
import { isCallStillWanted, type Redis, storeResult } from '@toolq/shared/internal';
import type { Queue } from 'bullmq';
import { coordinatorResult } from '../barrier.ts';
import type { JobQueues } from '../job-queues.ts';
import { wakeRun } from '../runs/run-wake.ts';
import type { ApprovalOutcome } from './approval-options.ts';
import type { ApprovalStore, StoredApproval } from './approval-store.ts';

export interface ApplyDeps {
  redis: Redis;
  prefix: string;
  jobs: JobQueues;
  logger: Logger;
  store: ApprovalStore;
  /** The runs queue (a parked run's job is promoted from its delayed set). */
  runs: () => Queue;
}

export async function applyEnd(deps: ApplyDeps, a: StoredApproval): Promise<void> {
  const { redis, jobs, store } = deps;
  const status = a.status;
  const outcome: ApprovalOutcome = {
    approvalId: a.approvalId,
    toolUseId: a.toolUseId,
    tool: a.tool,
    status: status === 'pending' ? 'cancelled' : status,
    ...(a.decidedBy === undefined ? {} : { decidedBy: a.decidedBy }),
    ...(a.decidedAt === undefined ? {} : { decidedAt: a.decidedAt }),
    ...(a.reason ? { reason: a.reason } : {}),
  };
  await store.recordOnBatch(a.target.batchKey, a.target.index, outcome);
  const runGoesOn = async () => a.runId === undefined || (await store.runStatus(a.runId)) === 'running';
  if (status === 'approved') {
    const wanted = await isCallStillWanted(redis, a.target.batchKey, a.target.index);
    if (wanted && (await runGoesOn())) {
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
  if (!a.runId || status === 'cancelled') return;
  const at = Date.now();
  const base = { at, approval_id: a.approvalId, tool: a.tool, tool_use_id: a.toolUseId };
  const [type, data] =
    status === 'expired'
      ? ['approval_expired', { ...base, expired_at: a.decidedAt }]
      : [
          'approval_decided',
          {
            ...base,
            decision: status === 'approved' ? 'approve' : 'deny',
            decided_by: a.decidedBy ?? null,
            decided_at: a.decidedAt ?? null,
            reason: a.reason ?? '',
          },
        ];
  await store
    .appendRunEvent(a.runId, type, data, `${a.approvalId}:${type}`)
    .catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not write the approval event'));
  // After its result or job: the run, woken, collects its turn and finds them.
  await wakeRun(redis, deps.runs(), deps.prefix, a.runId).catch((err: Error) =>
    deps.logger.warn({ err: err.message, run: a.runId }, 'could not wake the run'),
  );
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
