/**
 * The Dispatcher turns the tool calls of one model turn into BullMQ jobs and answers in order. Results
 * reach it through its own reply stream (ReplyReader); a periodic sweep reads the records of batches
 * still waiting (a missed notification costs latency, never correctness); deadlines are enforced here.
 */
import { randomUUID } from 'node:crypto';
import { createLogger, type Logger, ToolqError } from '@toolq/shared';
import {
  assertKeyPart,
  CallLog,
  type CoordinatorMetrics,
  closeRedis,
  createCoordinatorMetrics,
  createKeys,
  createRedis,
  createRegistry,
  defaultCoordinatorId,
  duplicateConnection,
  type Keys,
  type Redis,
  type Registry,
  readBatchMeta,
  readBatchOwner,
  readResults,
  whyNotWritable,
  withinRedis,
} from '@toolq/shared/internal';
import type { Queue } from 'bullmq';
import { Approvals } from './approvals/approvals.ts';
import { holdForApprovals } from './approvals/batch-hook.ts';
import { Barrier, type BarrierLimits } from './barrier.ts';
import type { BatchResult } from './batch-result.ts';
import { startBatchTrace } from './batch-tracing.ts';
import { Catalog } from './catalog.ts';
import { DeadWorkerSweep, deadWorkerSettings } from './delivery/dead-workers.ts';
import { BatchAnswers } from './dispatch/answer.ts';
import { collectPlan, planBatch, planJobs } from './dispatch/batch-plan.ts';
import { Rerunnable } from './dispatch/lost-calls.ts';
import {
  assertDispatchable,
  batchExists,
  batchNameOf,
  type ContentBlock,
  checkDispatcherOptions,
  checkStartOptions,
  DISPATCHER_DEFAULTS,
  type DispatcherOptions,
  type DispatchOptions,
  type ToolUse,
} from './dispatch/options.ts';
import {
  cancelOnAbort,
  type Deferred,
  deferred,
  JobRefs,
  Pending,
  PendingBatches,
} from './dispatch/pending.ts';
import { ProgressListener } from './dispatch/progress-listener.ts';
import { RecoverySweep } from './dispatch/recovery-sweep.ts';
import { type StartBatchDeps, startBatch } from './dispatch/start-batch.ts';
import { type StartBound, startBound, startWithin } from './dispatch/start-within.ts';
import { toolUsesOf } from './dispatch/tool-uses.ts';
import { FlowControl } from './flow/flow-control.ts';
import { flowAwareLastLook } from './flow/not-started.ts';
import { JobQueues } from './job-queues.ts';
import * as openai from './openai/dispatch.ts';
import { type Reply, ReplyReader } from './reply-reader.ts';

export type { ContentBlock, DispatcherOptions, DispatchOptions, ToolUse } from './dispatch/options.ts';

export class Dispatcher {
  readonly coordinatorId: string;
  readonly catalog: Catalog;
  readonly registry: Registry;
  readonly metrics: CoordinatorMetrics;
  /** The fleet's call log in Redis, for the performance report (GET /v1/report, pnpm report). */
  readonly callLog: CallLog;
  readonly flow: FlowControl; // operators' limits and pauses of flow-controlled tools (flow/)
  readonly approvals: Approvals; // calls waiting for a person (approvals/)
  private readonly keys: Keys;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly reader: ReplyReader;
  private readonly jobs: JobQueues;
  private readonly pending: PendingBatches;
  private readonly jobRefs = new JobRefs();
  private readonly answers: BatchAnswers;
  private readonly sweep: RecoverySweep;
  private readonly progress: ProgressListener;
  /** What startBatch() needs: one object for every batch. */
  private readonly starting: StartBatchDeps;
  private readonly settings: { sweepIntervalMs: number; batchRetentionMs: number };
  /** One object for every barrier: thousands wait at once. */
  private readonly barrierLimits: BarrierLimits;
  /** How start() is bounded, but for its signal. */
  private readonly startBound: Omit<StartBound, 'signal'>;
  private lastRedisError: string | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: DispatcherOptions = {}) {
    checkDispatcherOptions(options);
    this.settings = {
      sweepIntervalMs: options.sweepIntervalMs ?? DISPATCHER_DEFAULTS.sweepIntervalMs,
      batchRetentionMs: options.batchRetentionMs ?? DISPATCHER_DEFAULTS.batchRetentionMs,
    };
    this.keys = createKeys(options.prefix ?? DISPATCHER_DEFAULTS.prefix);
    this.coordinatorId = options.coordinatorId ?? defaultCoordinatorId();
    this.logger = (options.logger ?? createLogger({ name: 'toolq-coordinator' })).child({
      coordinator: this.coordinatorId,
    });
    this.registry = options.registry ?? createRegistry({ labels: { component: 'coordinator' } });
    this.metrics = createCoordinatorMetrics(this.registry);
    this.redis = createRedis(options.redis ?? options.redisUrl);
    this.redis.on('error', (err) => {
      this.lastRedisError = err.message;
      this.logger.warn({ err: err.message }, 'redis error');
    });
    this.startBound = startBound(options, () => this.lastRedisError);
    this.callLog = new CallLog({ redis: this.redis, prefix: this.keys.prefix, logger: this.logger });
    const blocking = duplicateConnection(this.redis);
    blocking.on('error', () => undefined); // reported by the reader loop
    this.catalog = new Catalog({ redis: this.redis, keys: this.keys, logger: this.logger });
    this.jobs = new JobQueues({ redis: this.redis, keys: this.keys, logger: this.logger, history: options });
    this.reader = new ReplyReader({
      blocking,
      redis: this.redis,
      streamKey: this.keys.replyStream(this.coordinatorId),
      logger: this.logger,
      onReplies: (replies) => this.onReplies(replies),
    });
    const { redis, keys, jobs, catalog, metrics, callLog, logger } = this;
    this.approvals = new Approvals({ redis, prefix: keys.prefix, jobs, logger, metrics });
    const { batchRetentionMs, sweepIntervalMs } = this.settings;
    const pending = new PendingBatches(keys, this.coordinatorId);
    this.pending = pending;
    const core = { redis, keys, jobs, metrics, logger };
    this.answers = new BatchAnswers({ ...core, pending, callLog, batchRetentionMs });
    this.flow = new FlowControl({ redis, catalog, queueFor: (route) => jobs.queueFor(route) });
    const deadWorkers = new DeadWorkerSweep({ ...core, ...deadWorkerSettings(this.coordinatorId, options) });
    const replyStream = keys.replyStream(this.coordinatorId);
    const sweepSettings = { sweepIntervalMs, batchRetentionMs, replyStream };
    this.sweep = new RecoverySweep({ ...core, catalog, pending, deadWorkers, ...sweepSettings });
    this.progress = new ProgressListener({ redis, channel: keys.replyStream(this.coordinatorId), logger });
    this.starting = { redis, jobs, logger, coordinatorId: this.coordinatorId, answers: this.answers };
    this.barrierLimits = {
      maxResultBytes: options.maxBatchResultBytes ?? DISPATCHER_DEFAULTS.maxBatchResultBytes,
      lastLook: flowAwareLastLook(redis, pending, catalog.flow),
      onDone: (barrier) => this.answers.onDone(barrier),
    };
  }

  /**
   * Connects, loads the catalog and starts the reply reader; dispatch() may be called right after.
   * Rejects (REDIS_UNAVAILABLE, naming the address) when Redis has not answered within
   * `startTimeoutMs`, or (CANCELLED) when `signal` aborts; the Dispatcher is then closed.
   */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    checkStartOptions(options);
    try {
      await startWithin(this.catalog.start(), { ...this.startBound, signal: options.signal });
    } catch (err) {
      await this.close();
      throw err;
    }
    this.reader.start();
    // Ticks often enough for batches collected from another coordinator's record; each batch is
    // read only when its own time has come.
    const every = Math.min(this.settings.sweepIntervalMs, DISPATCHER_DEFAULTS.foreignSweepMs);
    this.sweepTimer = setInterval(() => {
      this.approvals.tick();
      this.sweep.run().catch((err: Error) => this.logger.warn({ err: err.message }, 'sweep failed'));
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
    const probes = [this.keys.coordinatorProbe(this.coordinatorId), this.keys.workersProbe()];
    const redis = await whyNotWritable(this.redis, probes);
    return redis ?? (this.reader.isHealthy() ? undefined : 'the reply stream reader is not reading');
  }

  /** Answers every call still waiting as cancelled (forced shutdown). */
  cancelAll(reason: string): void {
    for (const { barrier } of this.pending.values()) barrier.cancelPending(reason);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Runs the `tool_use` blocks of `blocks` (a response's whole `content` will do: text, thinking,
   * server tool blocks, … are left out) and answers one tool_result per tool_use, in their order.
   */
  dispatch<T extends ToolUse>(
    blocks: readonly (T | ContentBlock)[],
    options: DispatchOptions = {},
  ): Promise<BatchResult> {
    const uid = randomUUID();
    const callerName = batchNameOf(options);
    const name = { app: options.app ?? DISPATCHER_DEFAULTS.app, batchName: callerName ?? uid };
    const startedAt = Date.now();
    let toolUses: ToolUse[];
    try {
      if (this.closing) throw new ToolqError('SHUTTING_DOWN', 'the coordinator is shutting down');
      toolUses = toolUsesOf(blocks);
      assertDispatchable(toolUses, name.app, options);
      if (callerName !== undefined && this.pending.hasName(this.keys.batchName(name.app, name.batchName)))
        throw batchExists(name.batchName);
    } catch (err) {
      return Promise.reject(err);
    }
    // The caller gets the one promise the batch keeps; prepare()'s own promise is garbage once the
    // batch is started (a dispatch returning it would keep it, and a reaction, for the whole wait).
    const answer = deferred<BatchResult>();
    this.prepare(uid, name, startedAt, toolUses, options, answer).catch((err: unknown) =>
      answer.resolve(Promise.reject(err)),
    );
    return options.onProgress ? this.progress.flushed(answer.promise) : answer.promise;
  }

  /** A Chat Completions message's `tool_calls`, answered as `role: "tool"` messages in order (openai/). */
  dispatchOpenAI(
    calls: readonly openai.ChatCall[],
    options?: DispatchOptions,
  ): Promise<openai.ChatToolBatch> {
    return openai.dispatchChatToolCalls(this, calls, options);
  }

  /** A Responses output's `function_call` items, answered as `function_call_output` items in order. */
  dispatchResponses(items: readonly openai.OutputItem[], options?: DispatchOptions) {
    return openai.dispatchFunctionCalls(this, items, options);
  }

  /**
   * Plans the batch, records it and starts it. Its own frame, so that the planning data (lookups,
   * job data, the record) is garbage once the jobs are sent, not kept while the batch waits.
   */
  private async prepare(
    uid: string,
    name: { app: string; batchName: string },
    startedAt: number,
    toolUses: readonly ToolUse[],
    options: DispatchOptions,
    answer: Deferred<BatchResult>,
  ): Promise<void> {
    const batchKey = this.keys.batch(this.coordinatorId, uid);
    const nameKey = this.keys.batchName(name.app, name.batchName);
    const lookups = await Promise.all(toolUses.map((use) => this.catalog.lookup(use.name)));
    if (options.onProgress) await this.progress.watch(uid, toolUses, options.onProgress, answer.promise);
    const planned = planBatch({ toolUses, lookups, startedAt, timeoutMs: options.timeoutMs });
    const { calls, meta } = planned;
    meta.id = name.batchName;
    meta.app = name.app;
    const trace = startBatchTrace(uid, name.batchName, calls, startedAt); // undefined unless tracing is on
    const streamKey = this.keys.replyStream(this.coordinatorId);
    const jobOptions = { ...options, app: name.app }; // a tool reads who it acts for: ctx.app, ctx.context
    const plan = { uid, calls, meta, lookups, toolUses, batchKey, streamKey, trace };
    const closing = () => this.closing !== undefined; // its approvals stay pending for a successor
    const hook = { ...name, jobOptions, options, answer, closing };
    const held = holdForApprovals(this.approvals, { ...plan, ...planned, ...hook });
    const { ttlMs } = held;
    const { queued, mayRunTwice } = planJobs({ ...plan, lookups: held.lookups, options: jobOptions });

    const barrier = new Barrier(
      uid,
      calls,
      options.failurePolicy ?? DISPATCHER_DEFAULTS.failurePolicy,
      this.barrierLimits,
    );
    barrier.settleAnswered(meta.calls); // unknown tool, no worker
    const every = this.settings.sweepIntervalMs;
    const entry = new Pending({
      barrier,
      app: name.app,
      batchName: name.batchName,
      jobs: this.jobRefs.of(uid, queued, calls.length, (index) => meta.calls[index]?.pool),
      startedAt,
      observe: true,
      answer: held.answer,
      sweepAt: startedAt + every,
      sweepEvery: every,
    });
    const keepMs = ttlMs + this.settings.batchRetentionMs;
    entry.rerunnable = Rerunnable.keep(mayRunTwice, meta);
    const callerNamed = batchNameOf(options) !== undefined;
    // A random id is the uid itself: only a caller's own id needs a map from name to uid.
    this.pending.add(entry, callerNamed ? nameKey : undefined);
    entry.detach = cancelOnAbort(barrier, options.signal);
    // Records the batch and sends its jobs; nothing there is awaited: the deadlines are armed.
    startBatch(this.starting, { entry, callerNamed, batchKey, nameKey, meta, queued, keepMs, ttlMs });
    held.request();
  }

  /**
   * Answers a batch dispatched by any coordinator of the fleet, from its record in Redis: results
   * already written come back at once, the rest as they arrive or by their deadlines. A batch still
   * waiting here is joined, not replaced: its dispatch and every collector get the same answer.
   * Undefined when no such batch is recorded for the app (never dispatched, or expired).
   */
  async collect(
    batchName: string,
    options: {
      app?: string;
      /** Bound on finding the batch in Redis (a `REDIS_UNAVAILABLE` error past it). Default: none. */
      lookupTimeoutMs?: number;
    } = {},
  ): Promise<BatchResult | undefined> {
    const app = options.app ?? DISPATCHER_DEFAULTS.app;
    assertKeyPart('batchName', batchName);
    assertKeyPart('app', app);
    const nameKey = this.keys.batchName(app, batchName);
    const local = this.pending.named(nameKey, batchName, app);
    if (local) return local;
    const lookup = <T>(work: Promise<T>): Promise<T> =>
      options.lookupTimeoutMs === undefined ? work : withinRedis(work, options.lookupTimeoutMs);
    const owner = await lookup(readBatchOwner(this.redis, nameKey));
    if (!owner) return undefined;
    const joined = this.pending.joinable(owner.uid);
    if (joined) return joined;
    const recordKey = this.keys.batch(owner.coordinatorId, owner.uid);
    const meta = await lookup(readBatchMeta(this.redis, recordKey));
    // The record belongs to that app only (the name key is per app already; this guards old records).
    if (!meta || (meta.app !== undefined && meta.app !== app)) return undefined;
    const again = this.pending.joinable(owner.uid); // another collector may have got here meanwhile
    if (again) return again;
    const { calls, refs } = collectPlan(meta);
    const barrier = new Barrier(owner.uid, calls, 'continue', this.barrierLimits);
    const foreign = owner.coordinatorId !== this.coordinatorId;
    const answer = deferred<BatchResult>();
    const entry = new Pending({
      barrier,
      app,
      batchName,
      jobs: this.jobRefs.of(owner.uid, refs, calls.length, (index) => meta.calls[index]?.pool),
      startedAt: meta.createdAt,
      observe: false,
      answer,
      sweepAt: 0,
      sweepEvery: foreign ? DISPATCHER_DEFAULTS.foreignSweepMs : this.settings.sweepIntervalMs,
    });
    if (foreign) entry.foreignKey = recordKey;
    entry.enqueued = true; // by the process that dispatched it, or never: either way a missing job is lost
    barrier.settleAnswered(meta.calls);
    this.pending.add(entry, batchName !== owner.uid ? nameKey : undefined); // a random id is found by its uid
    // Results already written come back at once; the sweep reads again if this read fails.
    readResults(this.redis, recordKey, barrier.pendingIndexes()).then(
      (found) => {
        for (const [index, settled] of found) barrier.settle(index, settled);
      },
      (err: Error) => this.logger.warn({ err: err.message, batchName }, 'could not read the batch record'),
    );
    this.answers.release(entry);
    return answer.promise;
  }

  /** Stops waiting here for a batch, not answering it (a run that parks, runs/run-park.ts): BatchAnswers.leave. */
  leave(batchName: string, app: string, reason: Error): boolean {
    return this.answers.leave(this.pending.entryNamed(app, batchName), reason);
  }

  /** The BullMQ queue of a pool or one of its lanes (for gauges and admin). */
  queueFor(pool: string): Queue {
    return this.jobs.queueFor(pool);
  }

  private onReplies(replies: Reply[]): void {
    for (const { uid, index, result } of replies) {
      const entry = this.pending.get(uid);
      if (entry) entry.barrier.settle(index, result);
      else this.answers.noteUnwaited(uid, index, result);
    }
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.sweepTimer);
      this.catalog.stop();
      this.cancelAll('the coordinator is shutting down');
      await this.reader.stop();
      await Promise.all([this.jobs, this.callLog, this.progress, this.approvals].map((c) => c.close()));
      await closeRedis(this.redis);
    })();
    return this.closing;
  }
}
