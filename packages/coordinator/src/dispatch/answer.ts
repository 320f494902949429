/**
 * The end of every waiting batch, dispatched or collected: once its barrier is done and the batch
 * released, it is forgotten, its answer summarised and settled, and what nobody waits for any more
 * is cleaned up in Redis (the record's retention, queued jobs, running calls).
 */
import type { CallResult, Logger } from '@toolq/shared';
import {
  type CallLog,
  type CoordinatorMetrics,
  expireBatchName,
  type Keys,
  markAnswered,
  publishCancel,
  RecentSet,
  type Redis,
} from '@toolq/shared/internal';
import type { Barrier, SettledCall } from '../barrier.ts';
import { observeBatch, summarise } from '../batch-result.ts';
import { dropBatchTrace, endBatchTrace } from '../batch-tracing.ts';
import { recordBatch } from '../fleet-report.ts';
import { type JobQueues, jobIdOf } from '../job-queues.ts';
import type { Pending, PendingBatches } from './pending.ts';

export class BatchAnswers {
  /** Calls this coordinator answered itself (deadline, cancellation), so a worker's result for them is late. */
  private readonly abandoned = new RecentSet(10_000);

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: Keys;
      jobs: JobQueues;
      pending: PendingBatches;
      metrics: CoordinatorMetrics;
      callLog: CallLog;
      logger: Logger;
      /** How long an answered batch's record stays in Redis. */
      batchRetentionMs: number;
    },
  ) {}

  /** BarrierLimits.onDone: a released batch is answered when its barrier is done. */
  onDone(barrier: Barrier): void {
    const entry = this.deps.pending.get(barrier.uid);
    if (entry?.barrier === barrier && !entry.held) this.answer(entry);
  }

  /** From now on the batch is answered as soon as its barrier is done: at once if it is already. */
  release(entry: Pending): void {
    entry.held = false;
    if (entry.barrier.isDone) this.answer(entry);
  }

  /**
   * Stops waiting for a batch here without answering it: nothing of it changes in Redis (its
   * record, its name, its approvals and its calls' jobs stay for whoever collects it); its caller
   * gets `reason` as the rejection. False when the batch does not wait here (or is answered).
   */
  leave(entry: Pending | undefined, reason: Error): boolean {
    if (!entry || entry.barrier.isDone) return false;
    entry.detach?.();
    entry.barrier.stopWaiting();
    this.deps.pending.remove(entry);
    entry.resolve(Promise.reject(reason));
    return true;
  }

  /**
   * A worker's result for a batch no longer waiting here: counts it as late unless it is a
   * duplicate of a result the sweep already took, or a worker's echo of the coordinator's own
   * timeout or cancellation (not news).
   */
  noteUnwaited(uid: string, index: number, result: CallResult): void {
    const abandoned = this.abandoned.delete(callKey(uid, index));
    if (abandoned && result.outcome !== 'timeout' && result.outcome !== 'cancelled')
      this.deps.metrics.lateResults.inc();
  }

  /**
   * The end of both dispatch() and collect(), once the barrier is done and the batch released:
   * cleans up after the batch and settles its answer. Runs inside whatever answered the last call.
   */
  private answer(entry: Pending): void {
    const uid = entry.barrier.uid;
    entry.detach?.();
    this.deps.pending.remove(entry);
    try {
      // The id belongs to another batch: stopping "its" calls would stop that batch's.
      if (entry.conflict) {
        dropBatchTrace(uid);
        throw entry.conflict;
      }
      const settled = entry.barrier.answers;
      this.afterAnswer(entry, settled);
      const result = summarise({
        batchName: entry.batchName,
        startedAt: entry.startedAt,
        calls: entry.barrier.calls,
        settled,
        poolOf: (index) => entry.jobs[index]?.pool,
      });
      endBatchTrace(uid, entry.startedAt, result);
      if (entry.observe) {
        observeBatch(this.deps.metrics, result);
        recordBatch(this.deps.callLog, result, entry.app);
      }
      entry.resolve(result);
    } catch (err) {
      entry.resolve(Promise.reject(err));
    }
  }

  /**
   * Keeps the record and its name for the retention only, marks the batch answered (workers skip its queued
   * calls) and stops work nobody waits for.
   */
  private afterAnswer(entry: Pending, settled: readonly SettledCall[]): void {
    const { redis, keys, jobs, logger } = this.deps;
    const uid = entry.barrier.uid;
    const recordKey = this.deps.pending.recordKey(entry);
    const retention = this.deps.batchRetentionMs;
    const warn = (what: string) => (err: Error) =>
      logger.warn({ err: err.message, batchName: entry.batchName }, what);
    // The name goes with the record: after it, the name is free again and collect() finds nothing.
    expireBatchName(redis, keys.batchName(entry.app, entry.batchName), uid, retention).catch(
      warn('could not shorten the batch name'),
    );
    const abandoned = settled.flatMap((call, index) =>
      call.byCoordinator && entry.jobs[index] ? [index] : [],
    );
    // Every queued call has a worker's result: no job of this batch is left for anyone to stop.
    if (abandoned.length === 0) {
      redis.pexpire(recordKey, retention).catch(warn('could not shorten the batch record'));
      return;
    }
    markAnswered(redis, recordKey, retention).catch(warn('could not mark batch answered'));
    for (const index of abandoned) this.abandoned.add(callKey(uid, index));
    publishCancel(redis, keys.cancelChannel(), {
      batchId: uid,
      indexes: abandoned,
      reason: 'the batch was answered without this call (deadline or cancellation)',
    }).catch(warn('could not publish cancellation'));
    // A job still waiting holds only unanswered calls; one already running is locked and left alone.
    const queueOf = new Map<string, string>(); // job id → queue, each job once
    for (const index of abandoned) {
      const ref = entry.jobs[index];
      if (ref) queueOf.set(jobIdOf(uid, index, ref), ref.queue);
    }
    for (const [jobId, queue] of queueOf) jobs.remove(queue, jobId);
  }
}

function callKey(uid: string, index: number): string {
  return `${uid}.${index}`;
}
