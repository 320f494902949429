/**
 * The Dispatcher turns the tool_use blocks of one model turn into BullMQ jobs and answers with the
 * ordered tool_result blocks. Results reach it through its own reply stream (ReplyReader); a
 * periodic sweep reads the batch records of batches still waiting, so a missed notification costs
 * latency, never correctness; deadlines are enforced here whatever the workers do.
 */
import { randomUUID } from 'node:crypto';
import {
  assertKeyPart,
  BATCH_TTL_AFTER_DEADLINE_MS,
  CallLog,
  type CallResult,
  type CoordinatorMetrics,
  claimBatch,
  closeRedis,
  coerceError,
  createCoordinatorMetrics,
  createKeys,
  createLogger,
  createRedis,
  createRegistry,
  type FailurePolicy,
  type Keys,
  type Logger,
  markAnswered,
  messages,
  publishCancel,
  RecentSet,
  type Redis,
  type Registry,
  readBatchMeta,
  readResults,
  ToolqError,
} from '@toolq/shared';
import type { Queue } from 'bullmq';
import { Barrier, type BarrierCall, type SettledCall } from './barrier.ts';
import { planBatch } from './batch-plan.ts';
import { type BatchResult, observeBatch, summarise } from './batch-result.ts';
import { dropBatchTrace, endBatchTrace, startBatchTrace } from './batch-tracing.ts';
import { Catalog } from './catalog.ts';
import { recordBatch } from './fleet-report.ts';
import { buildJobData, groupJobs, JobQueues, type PlannedJob } from './job-queues.ts';
import { type Reply, ReplyReader } from './reply-reader.ts';

export interface ToolUse {
  id: string;
  name: string;
  input: unknown;
}

export interface DispatchOptions {
  /** Per-call timeout. Default: each tool's own timeout (which defaults to 30 s). A smaller value wins. */
  timeoutMs?: number;
  /** Default `continue`. */
  failurePolicy?: FailurePolicy;
  /** With `retry`: re-runs per call, for tools that declare `retry`. Default: the tool's own. */
  maxRetries?: number;
  /** Aborting answers every unanswered call as cancelled at once. */
  signal?: AbortSignal;
  /**
   * Your own id for the batch (letters, digits, `_.-`), so that you can `collect()` it after a
   * coordinator restart. A batch id can be used once. Default: a random UUID.
   */
  batchId?: string;
}

export interface DispatcherOptions {
  /** Default `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Default `toolq`. */
  prefix?: string;
  /** Default: `<host>-<pid>-<random>`; set a stable one to collect a batch after a restart. */
  coordinatorId?: string;
  /**
   * A batch still waiting this long has its record read from Redis (healing a lost notification),
   * then again at doubling intervals up to 8 s. Default 1000 ms.
   */
  sweepIntervalMs?: number;
  logger?: Logger;
  /** Default: a new registry. */
  registry?: Registry;
}

interface Pending {
  barrier: Barrier;
  /** The BullMQ job of each queued call (several calls may share one). */
  /** By call index; a plain array is far smaller than a Map for the few calls of a batch. */
  jobs: (JobRef | undefined)[];
  /** When the sweep may next read this batch's record (epoch ms). */
  sweepAt: number;
  /** Wait before the next read: doubles after each sweep that finds it still waiting. */
  sweepEvery: number;
  /** Stops listening to the caller's AbortSignal. */
  detach?: () => void;
  /** Set when the caller's batch id turned out to be taken: the dispatch rejects with it. */
  conflict?: ToolqError;
}

interface JobRef {
  pool: string;
  jobId: string;
}

function jobRefs(jobs: readonly (JobRef & { indexes: readonly number[] })[]): (JobRef | undefined)[] {
  const refs: (JobRef | undefined)[] = [];
  for (const { pool, jobId, indexes } of jobs) {
    const ref = { pool, jobId }; // one per job, shared by its calls
    for (const index of indexes) refs[index] = ref;
  }
  return refs;
}

function cancelOnAbort(barrier: Barrier, signal: AbortSignal | undefined): (() => void) | undefined {
  if (!signal) return undefined;
  const onAbort = () =>
    barrier.cancelPending(`the caller cancelled the batch (${String(signal.reason ?? 'aborted')})`);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
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
  private readonly pending = new Map<string, Pending>();
  /** Calls this coordinator answered itself (deadline, cancellation), so a worker's result for them is late. */
  private readonly abandoned = new RecentSet(10_000);
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: DispatcherOptions = {}) {
    this.keys = createKeys(options.prefix ?? 'toolq');
    this.coordinatorId = options.coordinatorId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? createLogger({ name: 'toolq-coordinator' })).child({
      coordinator: this.coordinatorId,
    });
    this.registry = options.registry ?? createRegistry({ labels: { component: 'coordinator' } });
    this.metrics = createCoordinatorMetrics(this.registry);
    this.redis = createRedis(options.redisUrl);
    this.redis.on('error', (err) => this.logger.warn({ err: err.message }, 'redis error'));
    this.callLog = new CallLog({ redis: this.redis, prefix: this.keys.prefix, logger: this.logger });
    const blocking = createRedis(options.redisUrl);
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
  }

  /** Connects, loads the catalog and starts the reply reader; dispatch() may be called right after. */
  async start(): Promise<void> {
    await this.catalog.start();
    this.reader.start();
    const every = this.options.sweepIntervalMs ?? 1_000;
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: Error) => this.logger.warn({ err: err.message }, 'sweep failed'));
    }, every);
    this.sweepTimer.unref();
  }

  /** Redis answers and the reply reader is reading. */
  async isReady(): Promise<boolean> {
    if (this.closing || !this.reader.isHealthy()) return false;
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Answers every call still waiting as cancelled (forced shutdown). */
  cancelAll(reason: string): void {
    for (const { barrier } of this.pending.values()) barrier.cancelPending(reason);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  dispatch(toolUses: readonly ToolUse[], options: DispatchOptions = {}): Promise<BatchResult> {
    // A promise chain, not an async function: thousands of batches wait at once, and a suspended
    // async frame costs a few hundred bytes more than the closures below.
    let batchId: string;
    const startedAt = Date.now();
    try {
      if (this.closing) throw new ToolqError('SHUTTING_DOWN', 'the coordinator is shutting down');
      assertUniqueIds(toolUses);
      batchId = options.batchId ?? randomUUID();
      if (options.batchId !== undefined) assertKeyPart('batchId', options.batchId);
      if (this.pending.has(batchId)) throw batchExists(batchId);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.prepare(batchId, startedAt, toolUses, options).then((entry) =>
      this.answer(batchId, entry, startedAt, toolUses, true),
    );
  }

  /**
   * Plans the batch, records it and starts it. Its own frame, so that the planning data (lookups,
   * job data, the record) is garbage once the jobs are sent, not kept while the batch waits.
   */
  private async prepare(
    batchId: string,
    startedAt: number,
    toolUses: readonly ToolUse[],
    options: DispatchOptions,
  ): Promise<Pending> {
    const batchKey = this.keys.batch(this.coordinatorId, batchId);
    const lookups = await Promise.all(toolUses.map((use) => this.catalog.lookup(use.name)));
    const { calls, meta, ttlMs } = planBatch({ toolUses, lookups, startedAt, timeoutMs: options.timeoutMs });
    const trace = startBatchTrace(batchId, calls, startedAt); // undefined unless tracing is on
    const planned: PlannedJob[] = [];
    const workersIn = new Map<string, number>();
    meta.calls.forEach(({ pool }, index) => {
      const lookup = lookups[index];
      if (!pool || lookup?.kind !== 'ok') return;
      workersIn.set(pool, Math.max(workersIn.get(pool) ?? 0, lookup.workers));
      const reply = { batchId, index, batchKey, streamKey: this.keys.replyStream(this.coordinatorId) };
      const call = calls[index] as BarrierCall;
      const data = buildJobData({ call, input: toolUses[index]?.input, reply, options });
      if (trace) data.trace = trace.carrier(index);
      planned.push({ pool, index, data });
    });
    const queued = groupJobs(batchId, planned, (pool) => workersIn.get(pool) ?? 1);
    for (const job of queued) {
      for (const index of job.indexes) {
        const call = meta.calls[index];
        if (call) call.job = job.jobId; // so that a restarted coordinator can find the job
      }
    }

    const barrier = new Barrier(batchId, calls, options.failurePolicy ?? 'continue');
    meta.calls.forEach(({ answer }, index) => {
      if (answer) barrier.settle(index, answer, true);
    });
    const every = this.options.sweepIntervalMs ?? 1_000;
    const entry: Pending = { barrier, jobs: jobRefs(queued), sweepAt: startedAt + every, sweepEvery: every };
    this.pending.set(batchId, entry);
    entry.detach = cancelOnAbort(barrier, options.signal);

    // Nothing below is awaited: the barrier answers by its deadlines even if Redis never does.
    const enqueue = () => {
      if (barrier.isDone) return;
      void this.jobs.enqueue(queued).then((failures) => {
        for (const { index, error } of failures) {
          const message = messages.error(`could not enqueue the call: ${error.message}`);
          barrier.settle(index, barrier.coordinatorResult(index, 'error', message), true);
        }
      });
    };
    const claim = claimBatch(this.redis, batchKey, meta, ttlMs + BATCH_TTL_AFTER_DEADLINE_MS);
    if (options.batchId === undefined) {
      // A random id is new: its record is written beside the jobs, off the batch's critical path.
      enqueue();
      claim.catch((err: Error) =>
        this.logger.warn({ err: err.message, batchId }, 'could not record the batch'),
      );
    } else {
      // A caller's own id must be new before anything runs. The deadlines are armed already, so
      // waiting here (at most as long as the batch's longest timeout) cannot outlast them.
      // (A batch without calls has no deadline: it waits up to 1 s for the record.)
      const claimed = await settleWithin(claim, ttlMs > 0 ? ttlMs : 1_000);
      if (claimed === true) enqueue();
      else if (claimed === false) {
        entry.conflict = batchExists(batchId);
        barrier.cancelPending(entry.conflict.message);
      } else barrier.cancelPending(`could not record the batch: ${claimed.message}`);
    }
    return entry;
  }

  /**
   * Answers a batch this coordinator (or an earlier process with the same coordinator id)
   * dispatched, from its record in Redis: results already written come back at once, the rest by
   * their deadlines. Undefined when no such batch is recorded (never dispatched, or expired).
   */
  async collect(batchId: string): Promise<BatchResult | undefined> {
    assertKeyPart('batchId', batchId);
    const batchKey = this.keys.batch(this.coordinatorId, batchId);
    const meta = await readBatchMeta(this.redis, batchKey);
    if (!meta) return undefined;
    const calls = meta.calls.map((call, index) => ({ ...call, index }));
    const barrier = new Barrier(batchId, calls, 'continue');
    const refs = calls.flatMap(({ pool, job, index }) =>
      pool && job ? [{ pool, jobId: job, indexes: [index] }] : [],
    );
    const entry: Pending = {
      barrier,
      jobs: jobRefs(refs),
      sweepAt: 0,
      sweepEvery: this.options.sweepIntervalMs ?? 1_000,
    };
    for (const call of calls) if (call.answer) barrier.settle(call.index, call.answer, true);
    this.pending.set(batchId, entry);
    const found = await readResults(this.redis, batchKey, barrier.pendingIndexes());
    for (const [index, result] of found) barrier.settle(index, result);
    return this.answer(
      batchId,
      entry,
      meta.createdAt,
      calls.map((c) => ({ id: c.toolUseId })),
    );
  }

  /** Waits for the barrier, then cleans up after it: the end of both dispatch() and collect(). */
  private answer(
    batchId: string,
    entry: Pending,
    startedAt: number,
    toolUses: readonly { id: string }[],
    /** Count it in the batch metrics (a collected batch was counted when dispatched). */
    observe = false,
  ): Promise<BatchResult> {
    return entry.barrier.done.then((settled) => {
      entry.detach?.();
      this.pending.delete(batchId);
      // The id belongs to another batch: stopping "its" calls would stop that batch's.
      if (entry.conflict) dropBatchTrace(batchId);
      if (entry.conflict) throw entry.conflict;
      this.afterAnswer(batchId, entry, settled);
      const poolOf = (index: number) => entry.jobs[index]?.pool;
      const result = summarise({ batchId, startedAt, toolUses, settled, poolOf });
      endBatchTrace(batchId, startedAt, result);
      if (observe) {
        observeBatch(this.metrics, result);
        recordBatch(this.callLog, result);
      }
      return result;
    });
  }

  /** The BullMQ queue of a pool (for gauges and admin). */
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
    const due = [...this.pending.values()].filter((e) => !e.barrier.isDone && now >= e.sweepAt);
    // Chunks of concurrent reads: one round trip per chunk instead of one per batch.
    for (let i = 0; i < due.length; i += SWEEP_CHUNK) {
      await Promise.all(
        due.slice(i, i + SWEEP_CHUNK).map(async (entry) => {
          // Backs off per batch: long calls need not have their record read every second.
          entry.sweepEvery = Math.min(entry.sweepEvery * 2, MAX_SWEEP_EVERY_MS);
          entry.sweepAt = now + entry.sweepEvery;
          const batchKey = this.keys.batch(this.coordinatorId, entry.barrier.batchId);
          const found = await readResults(this.redis, batchKey, entry.barrier.pendingIndexes());
          for (const [index, result] of found) entry.barrier.settle(index, result);
        }),
      );
    }
  }

  /** Marks the batch answered (workers skip its queued calls) and stops work nobody waits for. */
  private afterAnswer(batchId: string, entry: Pending, settled: readonly SettledCall[]): void {
    const abandoned = settled.flatMap((call, index) =>
      call.byCoordinator && entry.jobs[index] ? [index] : [],
    );
    // Every queued call has a worker's result: no job of this batch is left for anyone to stop.
    if (abandoned.length === 0) return;
    const warn = (what: string) => (err: Error) => this.logger.warn({ err: err.message, batchId }, what);
    markAnswered(this.redis, this.keys.batch(this.coordinatorId, batchId), BATCH_TTL_AFTER_DEADLINE_MS).catch(
      warn('could not mark batch answered'),
    );
    for (const index of abandoned) this.abandoned.add(callKey(batchId, index));
    publishCancel(this.redis, this.keys.cancelChannel(), {
      batchId,
      indexes: abandoned,
      reason: 'the batch was answered without this call (deadline or cancellation)',
    }).catch(warn('could not publish cancellation'));
    // A job still waiting holds only unanswered calls; one already running is locked and left alone.
    const jobs = new Map(
      abandoned.map((index) => entry.jobs[index]).flatMap((j) => (j ? [[j.jobId, j]] : [])),
    );
    for (const { pool, jobId } of jobs.values()) this.jobs.remove(pool, jobId);
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
const MAX_SWEEP_EVERY_MS = 8_000;

/** The promise's value, or the Error it failed with, or a timeout Error after `ms`. */
function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | Error> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(new Error(`Redis did not answer within ${ms} ms`)), ms);
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
