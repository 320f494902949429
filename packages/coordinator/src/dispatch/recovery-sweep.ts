/**
 * The periodic sweep: reads the batch records of batches that have waited a while, which heals
 * any missed notification (a missed reply costs latency, never correctness), and finds the calls
 * Redis lost (lost-calls.ts): re-runs those that may run twice, answers the others is_error.
 */
import type { Logger } from '@toolq/shared';
import {
  type CoordinatorMetrics,
  messages,
  type Redis,
  readBatchMeta,
  readResults,
} from '@toolq/shared/internal';
import type { Catalog } from '../catalog.ts';
import type { DeadWorkerSweep } from '../delivery/dead-workers.ts';
import type { JobQueues } from '../job-queues.ts';
import type { JobAddress, JobRef } from './job-ref.ts';
import { callsWithoutJob, lostCallMessage, lostForSure } from './lost-calls.ts';
import { DISPATCHER_DEFAULTS } from './options.ts';
import type { Pending, PendingBatches } from './pending.ts';

/** What an at-most-once call lost by Redis is answered with (outcome `unknown`): it may have run. */
const LOST_CALL_REASON = 'Redis lost its job in a failover or a restart without persistence';

function atMostOnce(catalog: Catalog, tool: string): boolean {
  const lookup = catalog.lookupCached(tool);
  return lookup.kind === 'ok' && lookup.spec.delivery === 'at-most-once';
}

/** Batches whose reads go out at once: one round trip per chunk instead of one per batch. */
const SWEEP_CHUNK = 500;

export class RecoverySweep {
  constructor(
    private readonly deps: {
      redis: Redis;
      jobs: JobQueues;
      catalog: Catalog;
      metrics: CoordinatorMetrics;
      logger: Logger;
      pending: PendingBatches;
      /** The first wait before a batch's record is read, and the wait after a re-run. */
      sweepIntervalMs: number;
      /** How long a batch record outlives its last deadline: a re-run writes it again for as long. */
      batchRetentionMs: number;
      /** This coordinator's reply stream, where a re-run's workers notify. */
      replyStream: string;
      /** Settles dead workers' calls (docs/delivery.md); on this sweep's tick, at its own pace. */
      deadWorkers: DeadWorkerSweep;
    },
  ) {}

  /** Reads the batch records of batches that have waited a while: heals any missed notification. */
  async run(): Promise<void> {
    const { redis, jobs, pending } = this.deps;
    const now = Date.now();
    this.deps.deadWorkers
      .run(now)
      .catch((err: Error) => this.deps.logger.warn({ err: err.message }, 'dead-worker sweep failed'));
    const due = [...pending.values()].filter(
      (e) => !e.barrier.isDone && now >= e.sweepAt && !e.rerunnable?.busy,
    );
    // Each batch's next read is set as it is picked, not when its chunk's turn comes: the timer
    // starts the next sweep while this one works through its chunks, and with thousands of
    // batches waiting it picked every batch still in a later chunk again (the same reads twice,
    // five sweeps' worth of reads in flight at once in the memory benchmark).
    for (const entry of due) {
      // Backs off per batch: long calls need not have their record read every second. A
      // batch collected from another coordinator's record hears of nothing else: no back-off.
      if (!entry.foreignKey)
        entry.sweepEvery = Math.min(entry.sweepEvery * 2, DISPATCHER_DEFAULTS.maxSweepEveryMs);
      entry.sweepAt = now + entry.sweepEvery;
    }
    // Chunks of concurrent reads: one round trip per chunk instead of one per batch.
    for (let i = 0; i < due.length; i += SWEEP_CHUNK) {
      await Promise.all(
        due.slice(i, i + SWEEP_CHUNK).map(async (entry) => {
          const waiting = entry.barrier.pendingIndexes();
          // The jobs as this read sees them: a re-run by an overlapping sweep replaces a call's
          // reference, and a call looked up under the old one is not lost again (answerLost).
          const readRefs = new Map(waiting.map((index) => [index, entry.jobs[index]] as const));
          // Jobs first, then the record: a worker writes the result before its job goes away.
          const withoutJob = entry.enqueued
            ? await callsWithoutJob(jobs, entry.barrier.uid, entry.jobs, waiting)
            : [];
          const found = await readResults(redis, pending.recordKey(entry), waiting);
          for (const [index, result] of found) entry.barrier.settle(index, result);
          const lost = withoutJob.filter((index) => !found.has(index) && !entry.barrier.isSettled(index));
          if (lost.length > 0) await this.answerLost(entry, lost, readRefs);
        }),
      );
    }
  }

  /** Re-runs the lost calls that may run twice, within their deadlines; answers the rest is_error. */
  private async answerLost(
    entry: Pending,
    seemLost: readonly number[],
    /** Each call's job reference when its job was looked up. */
    readRefs: ReadonlyMap<number, JobRef | undefined>,
  ): Promise<void> {
    const { redis, jobs, catalog, metrics } = this.deps;
    const { barrier, rerunnable } = entry;
    const sure = entry.foreignKey ? await this.lostForSure(entry, entry.foreignKey, seemLost) : seemLost;
    // Sweeps overlap (the timer starts the next while one still reads): one that looked a call up
    // before another re-ran it saw the old job gone and would re-run it again, spending its
    // re-runs (MAX_RERUNS_PER_CALL) and running it once more for nothing (measured on the Cluster:
    // every lost call re-run twice). Only calls whose job is still the one looked up are lost, and
    // a re-run under way is left to finish: the next sweep looks at the new jobs.
    if (rerunnable?.busy) return;
    const lost = sure.filter((index) => entry.jobs[index] === readRefs.get(index));
    if (lost.length === 0) return;
    let rerun = new Map<number, JobAddress>();
    let failed = new Map<number, string>();
    const eligible = rerunnable?.eligible(entry, lost, Date.now()) ?? [];
    if (rerunnable && eligible.length > 0) {
      rerunnable.busy = true;
      const target = {
        recordKey: this.deps.pending.recordKey(entry),
        streamKey: this.deps.replyStream,
        retentionMs: this.deps.batchRetentionMs,
      };
      try {
        ({ rerun, failed } = await rerunnable.rerun(
          { redis, queues: jobs, catalog },
          entry,
          target,
          eligible,
        ));
      } finally {
        rerunnable.busy = false;
      }
    }
    // Answered meanwhile (a deadline, a cancellation): nobody waits for the new jobs.
    if (barrier.isDone) {
      for (const { queue, jobId } of rerun.values()) jobs.remove(queue, jobId);
      return;
    }
    for (const [index, ref] of rerun) {
      const pool = entry.jobs[index]?.pool ?? ref.queue;
      entry.jobs[index] = { pool, ...ref };
      metrics.lostCalls.inc({ pool, action: 'rerun' });
    }
    if (rerun.size > 0) {
      this.deps.logger.warn(
        { batchName: entry.batchName, calls: [...rerun.keys()] },
        'Redis lost calls of tools that may run twice: re-running them',
      );
      // The new jobs may be lost as well while the failover lasts: look again soon.
      entry.sweepEvery = this.deps.sweepIntervalMs;
      entry.sweepAt = Date.now() + entry.sweepEvery;
    }
    for (const index of lost) {
      if (rerun.has(index)) continue;
      const tool = barrier.calls[index]?.tool ?? '';
      const answer = atMostOnce(catalog, tool)
        ? barrier.coordinatorResult(index, 'unknown', messages.interrupted(tool, LOST_CALL_REASON))
        : barrier.coordinatorResult(index, 'error', lostCallMessage(failed.get(index)));
      if (barrier.settle(index, answer, true))
        metrics.lostCalls.inc({ pool: entry.jobs[index]?.pool ?? 'unknown', action: 'error' });
    }
  }

  /**
   * A batch collected from another coordinator's record: that coordinator may be re-running a lost
   * call (its tool may run twice), and writes the new job into the record first. So the record's
   * job is followed, and a call is taken for lost only once it has looked lost for longer than the
   * owner's slowest sweep; else a collector could answer "lost" where the dispatch got the result.
   */
  private async lostForSure(entry: Pending, recordKey: string, lost: readonly number[]): Promise<number[]> {
    const meta = await readBatchMeta(this.deps.redis, recordKey);
    const uid = entry.barrier.uid;
    return lostForSure({
      uid,
      lost,
      recorded: meta?.calls,
      jobs: entry.jobs,
      since: this.deps.pending.lostSinceOf(uid),
      now: Date.now(),
      graceMs: DISPATCHER_DEFAULTS.foreignLostGraceMs,
    });
  }
}
