/**
 * The Dispatcher turns the tool_use blocks of one model turn into BullMQ jobs and answers with the
 * ordered tool_result blocks. Results reach it through its own reply stream (ReplyReader); a
 * periodic sweep reads the batch records of batches still waiting, so a missed notification costs
 * latency, never correctness; deadlines are enforced here whatever the workers do.
 */
import { randomUUID } from 'node:crypto';
import { type CallResult, createLogger, type Logger, ToolqError } from '@toolq/shared';
import {
  assertKeyPart,
  CallLog,
  type CoordinatorMetrics,
  claimBatch,
  claimBatchName,
  closeRedis,
  coerceError,
  createCoordinatorMetrics,
  createKeys,
  createRedis,
  createRegistry,
  describeRedisFailure,
  duplicateConnection,
  isClusterConnection,
  type Keys,
  markAnswered,
  messages,
  publishCancel,
  RecentSet,
  type Redis,
  type Registry,
  readBatchMeta,
  readBatchOwner,
  readResults,
  whyNotWritable,
  withinRedis,
} from '@toolq/shared/internal';
import type { Queue } from 'bullmq';
import { whenAborted } from './abort-fanout.ts';
import { Barrier, type BarrierCall, type BarrierLimits, type LastLook, type SettledCall } from './barrier.ts';
import { planBatch } from './batch-plan.ts';
import { type BatchResult, observeBatch, summarise } from './batch-result.ts';
import { dropBatchTrace, endBatchTrace, startBatchTrace } from './batch-tracing.ts';
import { Catalog } from './catalog.ts';
import {
  DISPATCHER_DEFAULTS,
  type DispatcherOptions,
  type DispatchOptions,
  MAX_TIMEOUT_MS,
} from './dispatcher-options.ts';
import { recordBatch } from './fleet-report.ts';
import {
  buildJobData,
  groupJobs,
  JobQueues,
  jobIdOf,
  type PlannedJob,
  singleCallJobId,
} from './job-queues.ts';
import { callsWithoutJob, LOST_CALL_MESSAGE, Rerunnable } from './lost-calls.ts';
import { type Reply, ReplyReader } from './reply-reader.ts';

/**
 * A `tool_use` block as the Messages API (and the SDK's `ToolUseBlock`) has it; only id, name and
 * input are used. `dispatch()` is generic over it, so a literal block with fields the API adds
 * later type-checks as well.
 */
export interface ToolUse {
  id: string;
  name: string;
  input: unknown;
  type?: 'tool_use';
  caller?: unknown;
}

export type { DispatcherOptions, DispatchOptions } from './dispatcher-options.ts';

/**
 * A batch waiting in this process. Thousands wait at once, so it keeps what the wait and the answer
 * need and nothing of the planning (job data, inputs, the record, the caller's tool_use objects).
 * A class whose constructor sets every field: all entries share one shape, fields in the object.
 */
class Pending {
  /** Its `batchId` is the dispatch's uid. */
  readonly barrier: Barrier;
  /** The app, and the id the caller knows the batch by (the uid itself unless the caller named it). */
  readonly app: string;
  readonly id: string;
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
   * caller's own id is still being claimed. Dispatcher.release() ends it.
   */
  held = true;

  constructor(init: {
    barrier: Barrier;
    app: string;
    id: string;
    jobs: (JobRef | undefined)[];
    startedAt: number;
    observe: boolean;
    answer: Deferred<BatchResult>;
    sweepAt: number;
    sweepEvery: number;
  }) {
    this.barrier = init.barrier;
    this.app = init.app;
    this.id = init.id;
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
interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: Deferred<T>['resolve'];
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface JobRef {
  /** For metrics. */
  readonly pool: string;
  /** Where the job waits: the pool's queue or a lane of it. */
  readonly queue: string;
  /**
   * Absent for a call sent in a job of its own, whose id is derived from the batch's uid (jobIdOf):
   * those references are shared by every batch (Dispatcher.ownJobRef), not an object and an id
   * string per call.
   */
  readonly jobId?: string;
}

function cancelOnAbort(barrier: Barrier, signal: AbortSignal | undefined): (() => void) | undefined {
  if (!signal) return undefined;
  return whenAborted(signal, () =>
    barrier.cancelPending(`the caller cancelled the batch (${String(signal.reason ?? 'aborted')})`),
  );
}

export class Dispatcher {
  readonly coordinatorId: string;
  readonly catalog: Catalog;
  readonly registry: Registry;
  readonly metrics: CoordinatorMetrics;
  /** The fleet's call log in Redis, for the performance report (GET /v1/report, pnpm report). */
  readonly callLog: CallLog;
  private readonly keys: Keys;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly reader: ReplyReader;
  private readonly jobs: JobQueues;
  /** By uid. */
  private readonly pending = new Map<string, Pending>();
  /** Batch name key → uid, for the batches in `pending`. */
  private readonly names = new Map<string, string>();
  private readonly settings: {
    sweepIntervalMs: number;
    batchRetentionMs: number;
    maxBatchResultBytes: number;
  };
  private readonly lastLook: LastLook;
  /** One object for every barrier: thousands wait at once. */
  private readonly barrierLimits: BarrierLimits;
  /** The shared JobRef of calls in a job of their own, by pool, then queue (a few per pool and deploy). */
  private readonly ownJobRefs = new Map<string, Map<string, JobRef>>();
  /**
   * Collected batches' calls that look lost (job and result gone), by uid, then call index: since
   * when. Their owner may be re-running them; kept here, not in each waiting batch.
   */
  private readonly lostSince = new Map<string, Map<number, number>>();
  /** Calls this coordinator answered itself (deadline, cancellation), so a worker's result for them is late. */
  private readonly abandoned = new RecentSet(10_000);
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: DispatcherOptions = {}) {
    this.settings = {
      sweepIntervalMs: positiveMs(
        'sweepIntervalMs',
        options.sweepIntervalMs ?? DISPATCHER_DEFAULTS.sweepIntervalMs,
      ),
      batchRetentionMs: positiveMs(
        'batchRetentionMs',
        options.batchRetentionMs ?? DISPATCHER_DEFAULTS.batchRetentionMs,
      ),
      maxBatchResultBytes: options.maxBatchResultBytes ?? DISPATCHER_DEFAULTS.maxBatchResultBytes,
    };
    this.keys = createKeys(options.prefix ?? DISPATCHER_DEFAULTS.prefix);
    this.coordinatorId = options.coordinatorId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? createLogger({ name: 'toolq-coordinator' })).child({
      coordinator: this.coordinatorId,
    });
    this.registry = options.registry ?? createRegistry({ labels: { component: 'coordinator' } });
    this.metrics = createCoordinatorMetrics(this.registry);
    this.redis = createRedis(options.redis ?? options.redisUrl);
    this.redis.on('error', (err) => this.logger.warn({ err: err.message }, 'redis error'));
    this.callLog = new CallLog({ redis: this.redis, prefix: this.keys.prefix, logger: this.logger });
    const blocking = duplicateConnection(this.redis);
    blocking.on('error', () => undefined); // reported by the reader loop
    this.catalog = new Catalog({ redis: this.redis, keys: this.keys, logger: this.logger });
    this.jobs = new JobQueues({ redis: this.redis, keys: this.keys, logger: this.logger });
    this.reader = new ReplyReader({
      blocking,
      redis: this.redis,
      streamKey: this.keys.replyStream(this.coordinatorId),
      logger: this.logger,
      onReplies: (replies) => this.onReplies(replies),
    });
    this.barrierLimits = {
      maxResultBytes: this.settings.maxBatchResultBytes,
      lastLook: (barrier, indexes) => this.lastLook(barrier, indexes),
      onDone: (barrier) => {
        const entry = this.pending.get(barrier.batchId);
        if (entry?.barrier === barrier && !entry.held) this.answer(entry);
      },
    };
    this.lastLook = (barrier, indexes) => {
      const entry = this.pending.get(barrier.batchId);
      if (!entry) return Promise.resolve(new Map());
      const read = readResults(this.redis, this.recordKey(entry), indexes);
      return settleWithin(read, DISPATCHER_DEFAULTS.lastLookMs).then((found) =>
        found instanceof Error ? new Map() : found,
      );
    };
  }

  private recordKey(entry: Pending): string {
    return entry.foreignKey ?? this.keys.batch(this.coordinatorId, entry.barrier.batchId);
  }

  /** Connects, loads the catalog and starts the reply reader; dispatch() may be called right after. */
  async start(): Promise<void> {
    await this.catalog.start();
    this.reader.start();
    // Ticks often enough for batches collected from another coordinator's record; each batch is
    // read only when its own time has come.
    const every = Math.min(this.settings.sweepIntervalMs, DISPATCHER_DEFAULTS.foreignSweepMs);
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: Error) => this.logger.warn({ err: err.message }, 'sweep failed'));
    }, every);
    this.sweepTimer.unref();
  }

  /** Redis takes writes (a full Redis answers PING but refuses them) and the reply reader is reading. */
  async isReady(): Promise<boolean> {
    if (this.closing || !this.reader.isHealthy()) return false;
    return (await this.readiness()) === undefined;
  }

  /** Why this coordinator is not ready, or undefined when it is. */
  async readiness(): Promise<string | undefined> {
    if (this.closing) return 'the coordinator is shutting down';
    // Redis first: a reader that is not reading is most often a Redis it cannot reach, and that
    // is what the operator needs to read. Writes in this coordinator's slot and the catalog's: on
    // a cluster they may be on different masters.
    const redis = await whyNotWritable(this.redis, [
      this.keys.coordinatorProbe(this.coordinatorId),
      this.keys.workersProbe(),
    ]);
    return redis ?? (this.reader.isHealthy() ? undefined : 'the reply stream reader is not reading');
  }

  /** Answers every call still waiting as cancelled (forced shutdown). */
  cancelAll(reason: string): void {
    for (const { barrier } of this.pending.values()) barrier.cancelPending(reason);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  dispatch<T extends ToolUse>(toolUses: readonly T[], options: DispatchOptions = {}): Promise<BatchResult> {
    const uid = randomUUID();
    const name = { app: options.app ?? DISPATCHER_DEFAULTS.app, id: options.batchId ?? uid };
    const startedAt = Date.now();
    try {
      if (this.closing) throw new ToolqError('SHUTTING_DOWN', 'the coordinator is shutting down');
      assertUniqueIds(toolUses);
      assertKeyPart('app', name.app);
      if (options.batchId !== undefined) assertKeyPart('batchId', options.batchId);
      if (options.timeoutMs !== undefined) assertTimeout(options.timeoutMs);
      if (options.batchId !== undefined && this.names.has(this.keys.batchName(name.app, name.id)))
        throw batchExists(name.id);
    } catch (err) {
      return Promise.reject(err);
    }
    // The caller gets the one promise the batch keeps; prepare()'s own promise is garbage once the
    // batch is started (a dispatch returning it would keep it, and a reaction, for the whole wait).
    const answer = deferred<BatchResult>();
    this.prepare(uid, name, startedAt, toolUses, options, answer).catch((err: unknown) =>
      answer.resolve(Promise.reject(err)),
    );
    return answer.promise;
  }

  /**
   * Plans the batch, records it and starts it. Its own frame, so that the planning data (lookups,
   * job data, the record) is garbage once the jobs are sent, not kept while the batch waits.
   */
  private async prepare(
    batchId: string,
    name: { app: string; id: string },
    startedAt: number,
    toolUses: readonly ToolUse[],
    options: DispatchOptions,
    answer: Deferred<BatchResult>,
  ): Promise<void> {
    const batchKey = this.keys.batch(this.coordinatorId, batchId);
    const nameKey = this.keys.batchName(name.app, name.id);
    const lookups = await Promise.all(toolUses.map((use) => this.catalog.lookup(use.name)));
    const { calls, meta, ttlMs } = planBatch({ toolUses, lookups, startedAt, timeoutMs: options.timeoutMs });
    meta.id = name.id;
    meta.app = name.app;
    const trace = startBatchTrace(batchId, name.id, calls, startedAt); // undefined unless tracing is on
    const planned: PlannedJob[] = [];
    /** The jobs of calls whose tools declare `retry` (they may run twice), by call index. */
    const mayRunTwice: (PlannedJob | undefined)[] = [];
    const workersIn = new Map<string, number>();
    meta.calls.forEach((call, index) => {
      const lookup = lookups[index];
      if (!call.pool || lookup?.kind !== 'ok') return;
      workersIn.set(lookup.queue, Math.max(workersIn.get(lookup.queue) ?? 0, lookup.workers));
      if (lookup.queue !== call.pool) call.queue = lookup.queue;
      const reply = { batchId, index, batchKey, streamKey: this.keys.replyStream(this.coordinatorId) };
      const data = buildJobData({
        call: calls[index] as BarrierCall,
        input: toolUses[index]?.input,
        reply,
        options,
      });
      if (trace) data.trace = trace.carrier(index);
      const job = { queue: lookup.queue, index, data };
      planned.push(job);
      if (lookup.spec.retry) mayRunTwice[index] = job;
    });
    const queued = groupJobs(batchId, planned, (queue) => workersIn.get(queue) ?? 1);
    for (const job of queued) {
      for (const index of job.indexes) {
        const call = meta.calls[index];
        if (call) call.job = job.jobId; // so that a restarted coordinator can find the job
      }
    }

    const barrier = new Barrier(
      batchId,
      calls,
      options.failurePolicy ?? DISPATCHER_DEFAULTS.failurePolicy,
      this.barrierLimits,
    );
    meta.calls.forEach((call, index) => {
      if (call.answer) barrier.settle(index, call.answer, true); // unknown tool, no worker
    });
    const every = this.settings.sweepIntervalMs;
    const entry = new Pending({
      barrier,
      app: name.app,
      id: name.id,
      jobs: this.jobRefs(batchId, queued, calls.length, (index) => meta.calls[index]?.pool),
      startedAt,
      observe: true,
      answer,
      sweepAt: startedAt + every,
      sweepEvery: every,
    });
    const keepMs = ttlMs + this.settings.batchRetentionMs;
    if (mayRunTwice.length > 0)
      entry.rerunnable = new Rerunnable(batchId, batchKey, mayRunTwice, meta, startedAt + keepMs);
    this.pending.set(batchId, entry);
    // A random id is the uid itself: only a caller's own id needs a map from name to uid.
    if (options.batchId !== undefined) this.names.set(nameKey, batchId);
    entry.detach = cancelOnAbort(barrier, options.signal);

    // Nothing below is awaited: the barrier answers by its deadlines even if Redis never does.
    const enqueue = () => {
      if (barrier.isDone) return;
      void this.jobs.enqueue(queued).then((failures) => {
        entry.enqueued = true;
        for (const { index, error } of failures) {
          const message = messages.error(`could not enqueue the call: ${describeRedisFailure(error)}`);
          barrier.settle(index, barrier.coordinatorResult(index, 'error', message), true);
        }
      });
    };
    // The record first, then the name, then the jobs: one connection keeps them in that order.
    const recorded = claimBatch(this.redis, batchKey, meta, keepMs);
    const named = claimBatchName(
      this.redis,
      nameKey,
      { coordinatorId: this.coordinatorId, uid: batchId },
      keepMs,
    );
    // On a cluster the record, the name and the queue live on different masters: a fast worker
    // could see a job before its record and, finding none, drop the result. There they come first.
    const ownId = options.batchId === undefined;
    if (ownId && !isClusterConnection(this.redis)) {
      // A random id is new: its record and name are written beside the jobs, off the critical path.
      enqueue();
      Promise.all([recorded, named]).catch((err: Error) =>
        this.logger.warn({ err: err.message, batchId: name.id }, 'could not record the batch'),
      );
      this.release(entry); // from here on, a collect() of this batch joins it
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
            entry.conflict = batchExists(name.id);
            barrier.cancelPending(entry.conflict.message);
          } else if (!(free instanceof NoAnswer)) {
            // Redis answered with an error (out of memory, read-only): say so now, not at the deadline.
            barrier.cancelPending(`could not record the batch: ${describeRedisFailure(free)}`);
          } // No answer at all: the calls were never enqueued and time out at their deadlines.
        } finally {
          this.release(entry);
        }
      });
    }
  }

  /**
   * Answers a batch dispatched by any coordinator of the fleet, from its record in Redis: results
   * already written come back at once, the rest as they arrive or by their deadlines. A batch still
   * waiting here is joined, not replaced: its dispatch and every collector get the same answer.
   * Undefined when no such batch is recorded for the app (never dispatched, or expired).
   */
  async collect(
    batchId: string,
    options: {
      app?: string;
      /** Bound on finding the batch in Redis (a `REDIS_UNAVAILABLE` error past it). Default: none. */
      lookupTimeoutMs?: number;
    } = {},
  ): Promise<BatchResult | undefined> {
    const app = options.app ?? DISPATCHER_DEFAULTS.app;
    assertKeyPart('batchId', batchId);
    assertKeyPart('app', app);
    const nameKey = this.keys.batchName(app, batchId);
    const local = this.joinable(this.names.get(nameKey) ?? this.randomNamed(batchId, app));
    if (local) return local;
    const lookup = <T>(work: Promise<T>): Promise<T> =>
      options.lookupTimeoutMs === undefined ? work : withinRedis(work, options.lookupTimeoutMs);
    const owner = await lookup(readBatchOwner(this.redis, nameKey));
    if (!owner) return undefined;
    const joined = this.joinable(owner.uid);
    if (joined) return joined;
    const recordKey = this.keys.batch(owner.coordinatorId, owner.uid);
    const meta = await lookup(readBatchMeta(this.redis, recordKey));
    // The record belongs to that app only (the name key is per app already; this guards old records).
    if (!meta || (meta.app !== undefined && meta.app !== app)) return undefined;
    const again = this.joinable(owner.uid); // another collector may have got here meanwhile
    if (again) return again;
    // What the barrier needs of each call, not the record's copy of it (answers, job ids).
    const calls = meta.calls.map(({ toolUseId, tool, deadline, timeoutMs }, index) => ({
      index,
      toolUseId,
      tool,
      deadline,
      timeoutMs,
    }));
    const barrier = new Barrier(owner.uid, calls, 'continue', this.barrierLimits);
    const refs = meta.calls.flatMap(({ pool, queue, job }, index) =>
      pool && job ? [{ queue: queue ?? pool, jobId: job, indexes: [index] }] : [],
    );
    const foreign = owner.coordinatorId !== this.coordinatorId;
    const answer = deferred<BatchResult>();
    const entry = new Pending({
      barrier,
      app,
      id: batchId,
      jobs: this.jobRefs(owner.uid, refs, calls.length, (index) => meta.calls[index]?.pool),
      startedAt: meta.createdAt,
      observe: false,
      answer,
      sweepAt: 0,
      sweepEvery: foreign ? DISPATCHER_DEFAULTS.foreignSweepMs : this.settings.sweepIntervalMs,
    });
    if (foreign) entry.foreignKey = recordKey;
    entry.enqueued = true; // by the process that dispatched it, or never: either way a missing job is lost
    meta.calls.forEach((call, index) => {
      if (call.answer) barrier.settle(index, call.answer, true);
    });
    this.pending.set(owner.uid, entry);
    if (batchId !== owner.uid) this.names.set(nameKey, owner.uid); // a random id is found by its uid
    // Results already written come back at once; the sweep reads again if this read fails.
    readResults(this.redis, recordKey, barrier.pendingIndexes()).then(
      (found) => {
        for (const [index, settled] of found) barrier.settle(index, settled);
      },
      (err: Error) => this.logger.warn({ err: err.message, batchId }, 'could not read the batch record'),
    );
    this.release(entry);
    return answer.promise;
  }

  /** Each call's JobRef, by index: one per job, shared by its calls. */
  private jobRefs(
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

  /** A batch dispatched here under a random id (its uid) for this app. */
  private randomNamed(batchId: string, app: string): string | undefined {
    const entry = this.pending.get(batchId);
    return entry && entry.app === app && entry.id === batchId ? batchId : undefined;
  }

  /** The answer of a batch waiting in this process, shared with whoever else waits for it. */
  private joinable(uid: string | undefined): Promise<BatchResult> | undefined {
    return uid === undefined ? undefined : this.pending.get(uid)?.result;
  }

  /** From now on the batch is answered as soon as its barrier is done: at once if it is already. */
  private release(entry: Pending): void {
    entry.held = false;
    if (entry.barrier.isDone) this.answer(entry);
  }

  /**
   * The end of both dispatch() and collect(), once the barrier is done and the batch released:
   * cleans up after the batch and settles its answer. Runs inside whatever answered the last call.
   */
  private answer(entry: Pending): void {
    const uid = entry.barrier.batchId;
    entry.detach?.();
    this.pending.delete(uid);
    this.lostSince.delete(uid);
    // Only a caller's own id has a map entry (a random id is the uid).
    if (entry.id !== uid) this.names.delete(this.keys.batchName(entry.app, entry.id));
    try {
      // The id belongs to another batch: stopping "its" calls would stop that batch's.
      if (entry.conflict) {
        dropBatchTrace(uid);
        throw entry.conflict;
      }
      const settled = entry.barrier.answers;
      this.afterAnswer(entry, settled);
      const result = summarise({
        batchId: entry.id,
        startedAt: entry.startedAt,
        calls: entry.barrier.calls,
        settled,
        poolOf: (index) => entry.jobs[index]?.pool,
      });
      endBatchTrace(uid, entry.startedAt, result);
      if (entry.observe) {
        observeBatch(this.metrics, result);
        recordBatch(this.callLog, result);
      }
      entry.resolve(result);
    } catch (err) {
      entry.resolve(Promise.reject(err));
    }
  }

  /** The BullMQ queue of a pool or one of its lanes (for gauges and admin). */
  queueFor(pool: string): Queue {
    return this.jobs.queueFor(pool);
  }

  private onReplies(replies: Reply[]): void {
    for (const { batchId, index, result } of replies) this.accept(batchId, index, result);
  }

  private accept(batchId: string, index: number, result: CallResult): void {
    const entry = this.pending.get(batchId);
    if (entry) {
      entry.barrier.settle(index, result);
      return;
    }
    // A duplicate of a result the sweep already took is not late, and a worker's echo of the
    // coordinator's own timeout or cancellation is not news.
    const abandoned = this.abandoned.delete(callKey(batchId, index));
    if (abandoned && result.outcome !== 'timeout' && result.outcome !== 'cancelled')
      this.metrics.lateResults.inc();
  }

  /** Reads the batch records of batches that have waited a while: heals any missed notification. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    const due = [...this.pending.values()].filter(
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
          const pending = entry.barrier.pendingIndexes();
          // Jobs first, then the record: a worker writes the result before its job goes away.
          const withoutJob = entry.enqueued
            ? await callsWithoutJob(this.jobs, entry.barrier.batchId, entry.jobs, pending)
            : [];
          const found = await readResults(this.redis, this.recordKey(entry), pending);
          for (const [index, result] of found) entry.barrier.settle(index, result);
          const lost = withoutJob.filter((index) => !found.has(index) && !entry.barrier.isSettled(index));
          if (lost.length > 0) await this.answerLost(entry, lost);
        }),
      );
    }
  }

  /** Re-runs the lost calls that may run twice, within their deadlines; answers the rest is_error. */
  private async answerLost(entry: Pending, seemLost: readonly number[]): Promise<void> {
    const { barrier, rerunnable } = entry;
    const lost = entry.foreignKey ? await this.lostForSure(entry, entry.foreignKey, seemLost) : seemLost;
    if (lost.length === 0) return;
    let rerun = new Map<number, { queue: string; jobId: string }>();
    let failed = new Map<number, string>();
    const eligible = rerunnable?.eligible(lost, Date.now()) ?? [];
    if (rerunnable && eligible.length > 0) {
      rerunnable.busy = true;
      try {
        const deps = { redis: this.redis, queues: this.jobs, catalog: this.catalog };
        ({ rerun, failed } = await rerunnable.rerun(deps, eligible));
      } finally {
        rerunnable.busy = false;
      }
    }
    // Answered meanwhile (a deadline, a cancellation): nobody waits for the new jobs.
    if (barrier.isDone) {
      for (const { queue, jobId } of rerun.values()) this.jobs.remove(queue, jobId);
      return;
    }
    for (const [index, ref] of rerun) {
      const pool = entry.jobs[index]?.pool ?? ref.queue;
      entry.jobs[index] = { pool, ...ref };
      this.metrics.lostCalls.inc({ pool, action: 'rerun' });
    }
    if (rerun.size > 0) {
      this.logger.warn(
        { batchId: entry.id, calls: [...rerun.keys()] },
        'Redis lost calls of tools that may run twice: re-running them',
      );
      // The new jobs may be lost as well while the failover lasts: look again soon.
      entry.sweepEvery = this.settings.sweepIntervalMs;
      entry.sweepAt = Date.now() + entry.sweepEvery;
    }
    for (const index of lost) {
      if (rerun.has(index)) continue;
      const reason = failed.get(index);
      const message = messages.error(reason ? `${LOST_CALL_MESSAGE}, ${reason}` : LOST_CALL_MESSAGE);
      if (barrier.settle(index, barrier.coordinatorResult(index, 'error', message), true))
        this.metrics.lostCalls.inc({ pool: entry.jobs[index]?.pool ?? 'unknown', action: 'error' });
    }
  }

  /**
   * A batch collected from another coordinator's record: that coordinator may be re-running a lost
   * call (its tool may run twice), and writes the new job into the record first. So the record's
   * job is followed, and a call is taken for lost only once it has looked lost for longer than the
   * owner's slowest sweep; else a collector could answer "lost" where the dispatch got the result.
   */
  private async lostForSure(entry: Pending, recordKey: string, lost: readonly number[]): Promise<number[]> {
    const meta = await readBatchMeta(this.redis, recordKey);
    const uid = entry.barrier.batchId;
    const since = this.lostSince.get(uid) ?? new Map<number, number>();
    this.lostSince.set(uid, since);
    const now = Date.now();
    const sure: number[] = [];
    for (const index of lost) {
      const call = meta?.calls[index];
      const ref = entry.jobs[index];
      if (call?.job && ref && call.job !== jobIdOf(uid, index, ref)) {
        entry.jobs[index] = { pool: ref.pool, queue: call.queue ?? call.pool ?? ref.queue, jobId: call.job };
        since.delete(index);
        continue;
      }
      const first = since.get(index) ?? now;
      since.set(index, first);
      if (now - first >= DISPATCHER_DEFAULTS.foreignLostGraceMs) sure.push(index);
    }
    return sure;
  }

  /**
   * Keeps the record for the retention only, marks the batch answered (workers skip its queued
   * calls) and stops work nobody waits for.
   */
  private afterAnswer(entry: Pending, settled: readonly SettledCall[]): void {
    const batchId = entry.barrier.batchId;
    const recordKey = this.recordKey(entry);
    const retention = this.settings.batchRetentionMs;
    const warn = (what: string) => (err: Error) =>
      this.logger.warn({ err: err.message, batchId: entry.id }, what);
    const abandoned = settled.flatMap((call, index) =>
      call.byCoordinator && entry.jobs[index] ? [index] : [],
    );
    // Every queued call has a worker's result: no job of this batch is left for anyone to stop.
    if (abandoned.length === 0) {
      this.redis.pexpire(recordKey, retention).catch(warn('could not shorten the batch record'));
      return;
    }
    markAnswered(this.redis, recordKey, retention).catch(warn('could not mark batch answered'));
    for (const index of abandoned) this.abandoned.add(callKey(batchId, index));
    publishCancel(this.redis, this.keys.cancelChannel(), {
      batchId,
      indexes: abandoned,
      reason: 'the batch was answered without this call (deadline or cancellation)',
    }).catch(warn('could not publish cancellation'));
    // A job still waiting holds only unanswered calls; one already running is locked and left alone.
    const queueOf = new Map<string, string>(); // job id → queue, each job once
    for (const index of abandoned) {
      const ref = entry.jobs[index];
      if (ref) queueOf.set(jobIdOf(batchId, index, ref), ref.queue);
    }
    for (const [jobId, queue] of queueOf) this.jobs.remove(queue, jobId);
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.sweepTimer);
      this.catalog.stop();
      for (const { barrier } of this.pending.values())
        barrier.cancelPending('the coordinator is shutting down');
      await this.reader.stop();
      await this.jobs.close();
      await this.callLog.close();
      await closeRedis(this.redis);
    })();
    return this.closing;
  }
}

const SWEEP_CHUNK = 500;

function positiveMs(what: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS)
    throw new ToolqError(
      'CONFIG_INVALID',
      `${what} must be a number of ms from 1 to ${MAX_TIMEOUT_MS}, got ${value}`,
    );
  return value;
}

function assertTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS)
    throw new ToolqError(
      'INVALID_INPUT',
      `timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS} (about 24.8 days), got ${timeoutMs}`,
    );
}

/** Redis gave no answer in time (as opposed to answering with an error). */
class NoAnswer extends Error {}

/** The promise's value, or the Error it failed with, or a NoAnswer after `ms`. */
function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | Error> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(new NoAnswer(`Redis did not answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        resolve(coerceError(err));
      },
    );
  });
}

function callKey(batchId: string, index: number): string {
  return `${batchId}.${index}`;
}

function batchExists(batchId: string): ToolqError {
  return new ToolqError(
    'BATCH_EXISTS',
    `batch ${batchId} was dispatched already; use collect() to get its results`,
  );
}

function assertUniqueIds(toolUses: readonly ToolUse[]): void {
  const seen = new Set<string>();
  for (const [i, use] of toolUses.entries()) {
    if (seen.has(use.id)) throw new ToolqError('INVALID_INPUT', `tool_uses.${i}.id: duplicate id ${use.id}`);
    seen.add(use.id);
  }
}
