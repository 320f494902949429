/**
 * The batches waiting in this process: one Pending each (what the wait and the answer need), the
 * references to their jobs, and the maps that find them by uid and by the caller's name.
 */
import type { ToolqError } from '@toolq/shared';
import type { Keys } from '@toolq/shared/internal';
import { whenAborted } from '../abort-fanout.ts';
import type { Barrier } from '../barrier.ts';
import type { BatchResult } from '../batch-result.ts';
import { singleCallJobId } from '../job-queues.ts';
import type { JobRef } from './job-ref.ts';
import type { Rerunnable } from './lost-calls.ts';

/**
 * A batch waiting in this process. Thousands wait at once, so it keeps what the wait and the answer
 * need and nothing of the planning (job data, inputs, the record, the caller's tool_use objects).
 * A class whose constructor sets every field: all entries share one shape, fields in the object.
 */
export class Pending {
  /** Its `uid` is the dispatch's. */
  readonly barrier: Barrier;
  /** The app, and the name the caller knows the batch by (the uid itself unless the caller named it). */
  readonly app: string;
  readonly batchName: string;
  /** The BullMQ job of each queued call (several calls may share one), by call index. */
  readonly jobs: (JobRef | undefined)[];
  /** Epoch ms of the dispatch. */
  readonly startedAt: number;
  /** Count it in the batch metrics and the call log (a collected batch was counted when dispatched). */
  readonly observe: boolean;
  /** The answer, shared by the dispatch and everyone collecting the batch meanwhile. */
  readonly result: Promise<BatchResult>;
  /** Settles `result` (rejects it when given a rejected promise); the only function a batch keeps. */
  readonly resolve: (answer: BatchResult | PromiseLike<BatchResult>) => void;
  /** When the sweep may next read this batch's record (epoch ms). */
  sweepAt: number;
  /** Wait before the next read: doubles after each sweep that finds it still waiting. */
  sweepEvery: number;
  /** Stops listening to the caller's AbortSignal. */
  detach: (() => void) | undefined = undefined;
  /** Set when the caller's batch id turned out to be taken: the dispatch rejects with it. */
  conflict: ToolqError | undefined = undefined;
  /** The record, when another coordinator dispatched the batch (no notifications reach us then). */
  foreignKey: string | undefined = undefined;
  /** The jobs are in their queues: from then on a job that is gone means a lost call. */
  enqueued = false;
  /** Kept when some calls' tools may run twice: re-runs those Redis loses (dispatching coordinator only). */
  rerunnable: Rerunnable | undefined = undefined;
  /**
   * Not answered yet even if the barrier is done: the batch is still being started, or the
   * caller's own id is still being claimed. BatchAnswers.release() ends it.
   */
  held = true;

  constructor(init: {
    barrier: Barrier;
    app: string;
    batchName: string;
    jobs: (JobRef | undefined)[];
    startedAt: number;
    observe: boolean;
    answer: Deferred<BatchResult>;
    sweepAt: number;
    sweepEvery: number;
  }) {
    this.barrier = init.barrier;
    this.app = init.app;
    this.batchName = init.batchName;
    this.jobs = init.jobs;
    this.startedAt = init.startedAt;
    this.observe = init.observe;
    this.result = init.answer.promise;
    this.resolve = init.answer.resolve;
    this.sweepAt = init.sweepAt;
    this.sweepEvery = init.sweepEvery;
  }
}

/**
 * A promise and its resolve function. A waiting batch keeps just the function (no chain of
 * promises and closures for the whole wait); resolving with a rejected promise rejects.
 */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: Deferred<T>['resolve'];
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Makes the batches' JobRefs, sharing one per pool and queue for calls in a job of their own. */
export class JobRefs {
  /** The shared JobRef of calls in a job of their own, by pool, then queue (a few per pool and deploy). */
  private readonly ownJobRefs = new Map<string, Map<string, JobRef>>();

  /** Each call's JobRef, by index: one per job, shared by its calls. */
  of(
    uid: string,
    jobs: readonly { queue: string; jobId: string; indexes: readonly number[] }[],
    calls: number,
    poolOf: (index: number) => string | undefined,
  ): (JobRef | undefined)[] {
    // Its exact size: an array grown by assignment keeps room for 16 elements.
    const refs: (JobRef | undefined)[] = new Array(calls).fill(undefined);
    for (const { queue, jobId, indexes } of jobs) {
      const [first = 0] = indexes;
      const pool = poolOf(first) ?? queue;
      const ref =
        indexes.length === 1 && jobId === singleCallJobId(uid, first)
          ? this.ownJobRef(pool, queue)
          : { pool, queue, jobId };
      for (const index of indexes) refs[index] = ref;
    }
    return refs;
  }

  private ownJobRef(pool: string, queue: string): JobRef {
    let byQueue = this.ownJobRefs.get(pool);
    if (!byQueue) {
      byQueue = new Map();
      this.ownJobRefs.set(pool, byQueue);
    }
    let ref = byQueue.get(queue);
    if (!ref) {
      ref = { pool, queue };
      byQueue.set(queue, ref);
    }
    return ref;
  }
}

export function cancelOnAbort(barrier: Barrier, signal: AbortSignal | undefined): (() => void) | undefined {
  if (!signal) return undefined;
  return whenAborted(signal, () =>
    barrier.cancelPending(`the caller cancelled the batch (${String(signal.reason ?? 'aborted')})`),
  );
}

/** The batches waiting in this process, found by uid or by the caller's name for them. */
export class PendingBatches {
  /** By uid. */
  private readonly byUid = new Map<string, Pending>();
  /** Batch name key → uid, for the batches in `byUid` a caller named (a random id is the uid). */
  private readonly names = new Map<string, string>();
  /**
   * Collected batches' calls that look lost (job and result gone), by uid, then call index: since
   * when. Their owner may be re-running them; kept here, not in each waiting batch.
   */
  private readonly lostSince = new Map<string, Map<number, number>>();

  constructor(
    private readonly keys: Keys,
    private readonly coordinatorId: string,
  ) {}

  get size(): number {
    return this.byUid.size;
  }

  get(uid: string): Pending | undefined {
    return this.byUid.get(uid);
  }

  values(): IterableIterator<Pending> {
    return this.byUid.values();
  }

  /** `nameKey`: the batch name key of a batch the caller named (its id is not its uid). */
  add(entry: Pending, nameKey: string | undefined): void {
    const uid = entry.barrier.uid;
    this.byUid.set(uid, entry);
    if (nameKey !== undefined) this.names.set(nameKey, uid);
  }

  /** A batch of this name waits here (dispatched or collected under the caller's own id). */
  hasName(nameKey: string): boolean {
    return this.names.has(nameKey);
  }

  /** Forgets the batch, its name and its calls that looked lost. */
  remove(entry: Pending): void {
    const uid = entry.barrier.uid;
    this.byUid.delete(uid);
    this.lostSince.delete(uid);
    // Only a caller's own name has a map entry (an unnamed batch's name is its uid).
    if (entry.batchName !== uid) this.names.delete(this.keys.batchName(entry.app, entry.batchName));
  }

  /** The answer of a batch waiting in this process, shared with whoever else waits for it. */
  joinable(uid: string | undefined): Promise<BatchResult> | undefined {
    return uid === undefined ? undefined : this.byUid.get(uid)?.result;
  }

  /** The batch the app knows by `batchName`, if it waits here. */
  entryNamed(app: string, batchName: string): Pending | undefined {
    const uid = this.names.get(this.keys.batchName(app, batchName)) ?? this.randomNamed(batchName, app);
    return uid === undefined ? undefined : this.byUid.get(uid);
  }

  /** The answer of the batch the app knows by `batchName` (its name key `nameKey`), if it waits here. */
  named(nameKey: string, batchName: string, app: string): Promise<BatchResult> | undefined {
    return this.joinable(this.names.get(nameKey) ?? this.randomNamed(batchName, app));
  }

  /** A batch dispatched here for this app without a name of the caller's (its name is its uid). */
  private randomNamed(batchName: string, app: string): string | undefined {
    const entry = this.byUid.get(batchName);
    return entry && entry.app === app && entry.batchName === batchName ? batchName : undefined;
  }

  /** Where the batch's record is: ours, or the dispatching coordinator's. */
  recordKey(entry: Pending): string {
    return entry.foreignKey ?? this.keys.batch(this.coordinatorId, entry.barrier.uid);
  }

  /** The collected batch's calls that looked lost, with since when (created on first use). */
  lostSinceOf(uid: string): Map<number, number> {
    const since = this.lostSince.get(uid) ?? new Map<number, number>();
    this.lostSince.set(uid, since);
    return since;
  }
}
