/**
 * Starts a planned batch that waits in this process already (its deadlines armed): writes its
 * record and claims its name, and sends its jobs, in the order that lets a worker always find the
 * record its result goes into, and a caller's own batch name stand for one batch across the fleet.
 */
import type { Logger } from '@toolq/shared';
import {
  type BatchMeta,
  claimBatch,
  claimBatchName,
  describeRedisFailure,
  isClusterConnection,
  messages,
  type Redis,
} from '@toolq/shared/internal';
import type { JobQueues, QueuedJob } from '../job-queues.ts';
import type { BatchAnswers } from './answer.ts';
import { batchExists } from './options.ts';
import type { Pending } from './pending.ts';
import { NoAnswer, settleWithin } from './settle-within.ts';

/** What every batch's start needs of the Dispatcher: one object, not a copy per batch. */
export interface StartBatchDeps {
  redis: Redis;
  jobs: JobQueues;
  logger: Logger;
  coordinatorId: string;
  /** Its release(): the batch may be answered from then on. */
  answers: BatchAnswers;
}

export function startBatch(
  deps: StartBatchDeps,
  batch: {
    entry: Pending;
    /** The caller named the batch: its name must be claimed across the fleet before anything runs. */
    callerNamed: boolean;
    batchKey: string;
    nameKey: string;
    meta: BatchMeta;
    queued: readonly QueuedJob[];
    /** How long the record and the name are kept. */
    keepMs: number;
    /** From the dispatch to the batch's last deadline. */
    ttlMs: number;
  },
): void {
  const { redis, jobs, logger, answers } = deps;
  const { entry, queued, keepMs, ttlMs } = batch;
  const { barrier, batchName } = entry;
  // Nothing below is awaited: the barrier answers by its deadlines even if Redis never does.
  const enqueue = () => {
    if (barrier.isDone) return;
    void jobs.enqueue(queued).then((failures) => {
      entry.enqueued = true;
      for (const { index, error } of failures) {
        const message = messages.error(`could not enqueue the call: ${describeRedisFailure(error)}`);
        barrier.settle(index, barrier.coordinatorResult(index, 'error', message), true);
      }
    });
  };
  // The record first, then the name, then the jobs: one connection keeps them in that order.
  const recorded = claimBatch(redis, batch.batchKey, batch.meta, keepMs);
  const named = claimBatchName(
    redis,
    batch.nameKey,
    { coordinatorId: deps.coordinatorId, uid: barrier.uid },
    keepMs,
  );
  // On a cluster the record, the name and the queue live on different masters: a fast worker
  // could see a job before its record and, finding none, drop the result. There they come first.
  const ownId = !batch.callerNamed;
  if (ownId && !isClusterConnection(redis)) {
    // A random id is new: its record and name are written beside the jobs, off the critical path.
    enqueue();
    Promise.all([recorded, named]).catch((err: Error) =>
      logger.warn({ err: err.message, batchName }, 'could not record the batch'),
    );
    answers.release(entry); // from here on, a collect() of this batch joins it
  } else {
    // A caller's own id must be free across the fleet before anything runs. The deadlines are
    // armed already, so the wait (at most the batch's longest timeout) cannot outlast them.
    // (A batch without calls has no deadline: it waits up to 1 s for the record.)
    // A collect() of the batch joins it meanwhile; the answer waits for the id's claim.
    settleWithin(
      Promise.all([recorded, named]).then(([, free]) => free),
      ttlMs > 0 ? ttlMs : 1_000,
    ).then((free) => {
      try {
        // A random id taken is our own claim, re-sent after a reconnect: the id is still ours.
        if (free === true || (free === false && ownId)) enqueue();
        else if (free === false) {
          entry.conflict = batchExists(batchName);
          barrier.cancelPending(entry.conflict.message);
        } else if (!(free instanceof NoAnswer)) {
          // Redis answered with an error (out of memory, read-only): say so now, not at the deadline.
          barrier.cancelPending(`could not record the batch: ${describeRedisFailure(free)}`);
        } // No answer at all: the calls were never enqueued and time out at their deadlines.
      } finally {
        answers.release(entry);
      }
    });
  }
}
