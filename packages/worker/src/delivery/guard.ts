/**
 * The worker's side of delivery (docs/delivery.md, @toolq/shared delivery.ts): each job it runs is
 * noted under its registry entry with its BullMQ lock token, so that a coordinator settles it in
 * seconds if this worker dies; an at-most-once call claims its start marker before the tool runs,
 * and a call found started before is answered "outcome unknown" instead of running again.
 */
import type { AnyTool, CallResult, Logger } from '@toolq/shared';
import {
  claimStart,
  forgetRunningJob,
  interruptedResult,
  type Keys,
  type ParsedJobData,
  type Redis,
  recordRunningJob,
  releaseStart,
  startMarkerTtlMs,
} from '@toolq/shared/internal';

/** A job this worker runs, noted in Redis until done() (see createDeliveryGuard). */
export interface TrackedJob {
  /** Settles once the note is in Redis (or failed to get there: logged, never thrown). */
  readonly noted: Promise<void>;
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

const UNTRACKED: TrackedJob = { noted: Promise.resolve(), done: () => undefined };

export function createDeliveryGuard(options: {
  redis: Redis;
  keys: Keys;
  workerId: string;
  logger: Logger;
}): DeliveryGuard {
  const { redis, keys, workerId, logger } = options;
  const warn = (what: string) => (err: Error) => logger.warn({ err: err.message }, what);
  return {
    track(job, token) {
      if (!token || job.id === undefined) return UNTRACKED;
      // The queue as coordinators name it: the pool or lane, without BullMQ's hash-tag braces.
      const ref = { queue: job.queueName.replace(/^\{(.*)\}$/, '$1'), jobId: job.id };
      const noted = recordRunningJob(redis, keys, workerId, { ...ref, token }).catch(
        warn('could not note a running job: a crash would leave it to the lock expiry'),
      );
      return {
        noted,
        done: () => {
          void noted.then(() =>
            forgetRunningJob(redis, keys, workerId, ref).catch(warn('could not forget a finished job')),
          );
        },
      };
    },
    async beforeStart(data, tool, idempotencyKey, tracked) {
      if (tool?.delivery !== 'at-most-once') return undefined;
      const [claimed] = await Promise.all([
        claimStart(redis, keys, idempotencyKey, workerId, startMarkerTtlMs(data.deadline)),
        tracked.noted,
      ]);
      if (claimed) return undefined;
      return interruptedResult(data, workerId, 'it was delivered again after a run that never reported');
    },
    async refused(tool, idempotencyKey) {
      if (tool?.delivery === 'at-most-once') await releaseStart(redis, keys, idempotencyKey, workerId);
    },
  };
}
