/**
 * The worker's side of delivery (docs/delivery.md, @toolq/shared delivery.ts): each job it runs is
 * noted under its registry entry with its BullMQ lock token, so that a coordinator settles it in
 * seconds if this worker dies; an at-most-once call claims its start marker before the tool runs,
 * and a call found started before is answered "outcome unknown" instead of running again.
 *
 * The notes are batched: the jobs started and finished within NOTE_EVERY_MS go to Redis in one
 * command, and a job that starts and finishes within it is never written. A tool without
 * at-most-once delivery thus costs no command per call (measured: bench/delivery-cost.ts); a job
 * that started less than NOTE_EVERY_MS before its worker died is not noted, and the sweep finds it
 * by its lock token instead (coordinator delivery/unnoted-jobs.ts). An at-most-once call writes the notes at once and waits for them
 * (beside its start marker), so that a sweep always knows of a started at-most-once call.
 */
import type { AnyTool, CallResult, Logger } from '@toolq/shared';
import {
  claimStart,
  interruptedResult,
  type Keys,
  type ParsedJobData,
  type Redis,
  releaseStart,
  routeOfQueueName,
  runningJobField,
  startMarkerTtlMs,
  writeRunningJobs,
} from '@toolq/shared/internal';

/** How long started and finished jobs gather before their notes are written (one command). */
export const NOTE_EVERY_MS = 100;

/** A job this worker runs, noted in Redis until done() (see createDeliveryGuard). */
export interface TrackedJob {
  /** Writes the pending notes now; settles once this job's is in Redis (or failed: logged, never thrown). */
  noted(): Promise<void>;
  done(): void;
}

export interface DeliveryGuard {
  /** Notes a job as running here, under its lock token; nothing for a job without one. */
  track(job: { queueName: string; id?: string | undefined }, token: string | undefined): TrackedJob;
  /**
   * Before a call starts: undefined when it may run, else the answer that it will not (an
   * at-most-once call started before). An at-most-once call waits for its job's note first, so
   * that a sweep always knows of a started call.
   */
  beforeStart(
    data: ParsedJobData,
    tool: AnyTool | undefined,
    idempotencyKey: string,
    tracked: TrackedJob,
  ): Promise<CallResult | undefined>;
  /**
   * The call was refused by its downstream (RateLimitedError: a 429 says nothing took effect), so
   * an at-most-once call may start again after the hold: its start marker goes, if it is this worker's.
   */
  refused(tool: AnyTool | undefined, idempotencyKey: string): Promise<void>;
}

const UNTRACKED: TrackedJob = { noted: () => Promise.resolve(), done: () => undefined };

export function createDeliveryGuard(options: {
  redis: Redis;
  keys: Keys;
  workerId: string;
  logger: Logger;
}): DeliveryGuard {
  const { redis, keys, workerId, logger } = options;
  const warn = (what: string) => (err: Error) => logger.warn({ err: err.message }, what);
  // What the next write adds (field → lock token) and removes; `written` settles when it is done.
  let added = new Map<string, string>();
  let removed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let next = deferredWrite();
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    const batch = { added, removed, written: next };
    added = new Map();
    removed = new Set();
    next = deferredWrite();
    writeRunningJobs(redis, keys, workerId, batch.added, batch.removed)
      .catch(warn('could not note running jobs: a crash would leave them to be found by their lock tokens'))
      .finally(batch.written.resolve);
    return batch.written.promise;
  };
  const soon = () => {
    timer ??= setTimeout(flush, NOTE_EVERY_MS);
  };
  return {
    track(job, token) {
      if (!token || job.id === undefined) return UNTRACKED;
      // The queue as coordinators name it: the pool or lane, without BullMQ's hash-tag braces.
      const field = runningJobField(routeOfQueueName(job.queueName), job.id);
      added.set(field, token);
      let noted: Promise<void> | undefined = next.promise;
      soon();
      return {
        noted: () => {
          if (added.has(field)) noted = flush();
          return noted ?? Promise.resolve();
        },
        done: () => {
          // Never written: nothing to remove (the common case for short calls).
          if (added.get(field) === token) added.delete(field);
          else removed.add(field);
          noted = undefined;
          soon();
        },
      };
    },
    async beforeStart(data, tool, idempotencyKey, tracked) {
      if (tool?.delivery !== 'at-most-once') return undefined;
      const [claimed] = await Promise.all([
        claimStart(redis, keys, idempotencyKey, workerId, startMarkerTtlMs(data.deadline)),
        tracked.noted(),
      ]);
      if (claimed) return undefined;
      return interruptedResult(data, workerId, 'it was delivered again after a run that never reported');
    },
    async refused(tool, idempotencyKey) {
      if (tool?.delivery === 'at-most-once') await releaseStart(redis, keys, idempotencyKey, workerId);
    },
  };
}

function deferredWrite(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
