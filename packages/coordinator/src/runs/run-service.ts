/**
 * Durable agent runs for a fleet of coordinators. A run is a record in Redis plus a job on one
 * BullMQ queue that every coordinator works on: the job's lock is the run's lease. A coordinator
 * that dies stops renewing its locks; BullMQ's stalled-job check moves the job back to the queue,
 * another coordinator picks it up and carries on from the last saved step (run-executor.ts).
 *
 * Takeover bound: the lock lasts takeoverMs/2 and the stalled check runs every takeoverMs/4. A
 * dead owner's lock lapses at most lockDuration after the death; the check moves a job only when
 * it is both unlocked and was seen active by the check before, and one coordinator's check can
 * skip a beat behind the dead one's (the fleet shares one check slot of stalledInterval), so the
 * job is back in the queue within lockDuration + 2 × stalledInterval = takeoverMs, and a waiting
 * coordinator picks it up at once (BullMQ's marker wakes it).
 *
 * Fair shares: each coordinator runs `concurrency` runs at once, and the runs waiting for a slot
 * are taken in turns between apps. A run's BullMQ priority is its place among its app's
 * unfinished runs (the quota's count, RunStore.admit): every app's first waiting run goes before
 * any app's second, and so on, FIFO within a place. So one app's hundred slow runs hold a new
 * app's run up for one slot, not for the whole backlog. A run taken over or handed over goes back
 * at the front (BullMQ puts a stalled job in the wait list, served before prioritized jobs).
 */
import { createHash } from 'node:crypto';
import { type Logger, type RedisConnectionConfig, ToolqError } from '@toolq/shared';
import {
  closeRedis,
  createKeys,
  createRedis,
  DEFAULTS,
  duplicateConnection,
  publishCancel,
  type Redis,
  randomHex,
  readBatchOwner,
} from '@toolq/shared/internal';
import { DelayedError, type Job, Queue, WaitingError, Worker } from 'bullmq';
import type { AgentCheckpoint } from '../agent/types.ts';
import type { Dispatcher } from '../dispatcher.ts';
import type { RunRequest } from '../http/schemas.ts';
import { RunEventHub } from './run-event-hub.ts';
import { executeRun, HAND_OVER_NOW, type RunModel } from './run-executor.ts';
import { RUN_ID_PATTERN, RUNS_QUEUE, runCancelChannel, runLockKey } from './run-keys.ts';
import { checkRunSize, checkRunTools, resolveRunTools } from './run-request-checks.ts';
import { type RunRecord, RunStore, type RunSummary } from './run-store.ts';
import { parkJob, wakeRun } from './run-wake.ts';

export const RUN_DEFAULTS = {
  /** TOOLQ_RUN_RETENTION_MS */
  retentionMs: DEFAULTS.runRetentionMs,
  /** TOOLQ_RUN_TAKEOVER_MS */
  takeoverMs: DEFAULTS.runTakeoverMs,
  /** TOOLQ_RUN_CONCURRENCY */
  concurrency: DEFAULTS.runConcurrency,
  /** TOOLQ_MAX_RUN_INPUT_BYTES */
  maxInputBytes: DEFAULTS.maxRunInputBytes,
  /** TOOLQ_MAX_ACTIVE_RUNS_PER_APP */
  maxActivePerApp: DEFAULTS.maxActiveRunsPerApp,
  /** How often an owner re-reads the status of its runs, in case a cancel message was missed. */
  statusPollMs: 2_000,
  /**
   * A run counted against its quota whose record is still missing this long after is dropped from
   * the count (its POST died between the two steps); younger ones may be being created right now.
   */
  admitGraceMs: 60_000,
  /** TOOLQ_MAX_STREAMS_PER_APP */
  maxStreamsPerApp: DEFAULTS.maxStreamsPerApp,
  /** TOOLQ_RUN_PARK_MIN_MS */
  parkMinMs: DEFAULTS.runParkMinMs,
} as const;

/** BullMQ's highest priority number (2^21). */
const MAX_PRIORITY = 2_097_152;

export interface RunServiceOptions {
  redisUrl?: string | undefined;
  /** Redis Cluster, Sentinel or standalone (`loadConfig().redis`); wins over `redisUrl`. */
  redis?: RedisConnectionConfig | undefined;
  /** Default `toolq`. */
  prefix?: string;
  dispatcher: Dispatcher;
  /** Without a model this coordinator still serves runs (reads, events, cancel) but runs none. */
  model?: RunModel | undefined;
  logger: Logger;
  /** How long a run's record and events are kept after it finished. Default 24 h. */
  retentionMs?: number;
  /** A dead coordinator's runs are taken over within this. Default 15 s. */
  takeoverMs?: number;
  /** Runs this coordinator runs at once (its run slots). Default 100. */
  concurrency?: number;
  /** Largest run request, as JSON; larger ones are refused (413 RUN_TOO_LARGE). Default 1 MiB. */
  maxInputBytes?: number;
  /** Unfinished runs one app may have, fleet-wide; one more is refused (429 TOO_MANY_RUNS). Default 100. */
  maxActivePerApp?: number;
  /** SSE streams of run events one app may have open on this coordinator. Default 100. */
  maxStreamsPerApp?: number;
  /**
   * A run waiting for approvals only parks (gives its slot and lease back) when the soonest of them
   * expires at least this far ahead; sooner ones are waited for in the process. Default 10 s.
   */
  parkMinMs?: number;
  /** Named tool sets a run may ask for as `tool_set` (TOOLQ_TOOL_SETS). Default none. */
  toolSets?: ReadonlyMap<string, readonly string[]>;
}

export interface CreatedRun {
  runId: string;
  status: RunRecord['status'];
  /** An earlier POST with the same Idempotency-Key created it. */
  replayed: boolean;
}

export function isRunId(value: string): boolean {
  return RUN_ID_PATTERN.test(value);
}

export class RunService {
  readonly store: RunStore;
  /** The live events of runs, for this coordinator's SSE streams (one Redis reader for all). */
  readonly events: RunEventHub;
  private readonly prefix: string;
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly queue: Queue;
  private worker: Worker | undefined;
  private readonly active = new Map<string, AbortController>();
  private pollTimer: NodeJS.Timeout | undefined;
  private handingOver = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RunServiceOptions) {
    this.prefix = options.prefix ?? 'toolq';
    this.redis = createRedis(options.redis ?? options.redisUrl);
    this.redis.on('error', (err) => options.logger.warn({ err: err.message }, 'redis error (runs)'));
    this.subscriber = duplicateConnection(this.redis);
    this.subscriber.on('error', () => undefined);
    this.store = new RunStore(this.redis, this.prefix, options.retentionMs ?? RUN_DEFAULTS.retentionMs);
    this.events = new RunEventHub(this.redis, this.store, {
      maxStreamsPerApp: options.maxStreamsPerApp ?? RUN_DEFAULTS.maxStreamsPerApp,
      logger: options.logger,
    });
    this.queue = new Queue(RUNS_QUEUE, { connection: this.redis, prefix: this.prefix });
    this.queue.on('error', (err) => options.logger.warn({ err: err.message }, 'runs queue error'));
  }

  /** A key (or a client) is what lets a run call the model: a gateway URL alone fails every run. */
  get hasModel(): boolean {
    const m = this.options.model;
    return Boolean(m && (m.client || m.apiKey));
  }

  get running(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    const channel = runCancelChannel(this.prefix);
    this.subscriber.on('message', (from: string, runId: string) => {
      if (from === channel) this.active.get(runId)?.abort(new Error('the run was cancelled'));
    });
    await this.subscriber.subscribe(channel);
    await this.queue.waitUntilReady();
    if (this.hasModel) this.startWorker();
    this.pollTimer = setInterval(() => {
      this.pollStatuses().catch(() => undefined);
    }, RUN_DEFAULTS.statusPollMs);
    this.pollTimer.unref();
  }

  private startWorker(): void {
    const takeoverMs = this.options.takeoverMs ?? RUN_DEFAULTS.takeoverMs;
    const connection = duplicateConnection(this.redis);
    connection.on('error', () => undefined); // BullMQ reports it through the worker's 'error' event
    const worker = new Worker(RUNS_QUEUE, (job: Job, token?: string) => this.process(job, token), {
      connection,
      prefix: this.prefix,
      concurrency: this.options.concurrency ?? RUN_DEFAULTS.concurrency,
      lockDuration: Math.round(takeoverMs / 2),
      stalledInterval: Math.round(takeoverMs / 4),
      // A run is recovered however often its coordinators die; executeRun gives up after MAX_OWNERS.
      maxStalledCount: 1_000_000,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    });
    worker.on('error', (err) => this.options.logger.warn({ err: err.message }, 'runs worker error'));
    this.worker = worker;
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    const runId = job.id ?? '';
    const controller = new AbortController();
    this.active.set(runId, controller);
    try {
      const outcome = await executeRun(runId, {
        store: this.store,
        dispatcher: this.options.dispatcher,
        coordinatorId: this.options.dispatcher.coordinatorId,
        model: this.options.model ?? {},
        logger: this.options.logger,
        signal: controller.signal,
        handingOver: () => this.handingOver,
        // BullMQ gives a processor its job's lock token; without one there is no lease to check.
        leaseLeft: async () =>
          token === undefined ? Infinity : this.store.leaseLeft(runLockKey(this.prefix, runId), token),
        park: {
          redis: this.redis,
          prefix: this.prefix,
          minMs: this.options.parkMinMs ?? RUN_DEFAULTS.parkMinMs,
        },
      });
      if (typeof outcome === 'object') {
        // Parked: the slot and the lease go with the job to the delayed set (run-wake.ts).
        await parkJob({ job, token, wakeAt: outcome.wakeAt }, this.redis, this.queue, this.prefix);
        throw new DelayedError();
      }
      if (outcome === 'handed_over') {
        // Back to the queue now, not after the lock expires: another coordinator carries on at once.
        await job.moveToWait(token);
        this.options.logger.info({ runId }, 'run handed over: another coordinator carries it on');
        throw new WaitingError();
      }
    } finally {
      this.active.delete(runId);
    }
  }

  async create(app: string, request: RunRequest, idempotencyKey?: string): Promise<CreatedRun> {
    checkRunSize(request, this.options.maxInputBytes ?? RUN_DEFAULTS.maxInputBytes);
    const tools = resolveRunTools(request, this.options.toolSets ?? new Map());
    // Refused here (400) rather than accepted and failed by the run's first step.
    await checkRunTools(this.options.dispatcher, tools);
    const runId = idempotencyKey === undefined ? newRunId() : idempotentRunId(app, idempotencyKey);
    // The request as given decides whether a repeated Idempotency-Key is the same run.
    const requestHash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
    // A repeated POST of a run that exists is answered whatever the quota says.
    const exists = idempotencyKey !== undefined && (await this.store.status(runId)) !== undefined;
    const place = exists ? 1 : await this.admit(app, runId);
    // A tool set is stored with its tools: a coordinator that takes the run over offers the same.
    const stored = { ...request, tools: [...tools] };
    const outcome = await this.store.create({ runId, app, request: stored, requestHash, now: Date.now() });
    if (!outcome.created && outcome.status !== 'running') await this.store.release(app, runId);
    if (!outcome.created && (outcome.app !== app || outcome.requestHash !== requestHash)) {
      throw new ToolqError(
        'IDEMPOTENCY_CONFLICT',
        `the Idempotency-Key was used for another request (run ${runId}); use a new key for a new run`,
      );
    }
    const status = outcome.created ? 'running' : outcome.status;
    // Adding again is a no-op while the job exists, and heals a POST that died between the two steps.
    if (status === 'running') await this.enqueue(runId, place);
    return { runId, status, replayed: !outcome.created };
  }

  private async enqueue(runId: string, place: number): Promise<void> {
    await this.queue.add(
      'run',
      { runId },
      {
        jobId: runId,
        removeOnComplete: true,
        removeOnFail: true,
        priority: Math.min(Math.max(place, 1), MAX_PRIORITY),
      },
    );
  }

  /**
   * Counts the run against its app's quota and answers its fair place (see the top). At the
   * quota, runs counted but finished (their owner died before it said so) or never created are
   * dropped from the count first; a run that is running but has no job (its POST died after the
   * record) gets its job back.
   */
  private async admit(app: string, runId: string): Promise<number> {
    const max = this.options.maxActivePerApp ?? RUN_DEFAULTS.maxActivePerApp;
    const place = await this.store.admit(app, runId, max);
    if (place > 0) return place;
    const now = Date.now();
    const counted = await this.store.admitted(app);
    const statuses = await Promise.all(counted.map((c) => this.store.status(c.runId)));
    await Promise.all(
      counted.map(async ({ runId: id, at }, i) => {
        const status = statuses[i];
        const old = now - at > RUN_DEFAULTS.admitGraceMs;
        if (status === undefined ? old : status !== 'running') await this.store.release(app, id);
        else if (old && (await this.queue.getJobState(id)) === 'unknown') await this.enqueue(id, i + 1);
      }),
    );
    const retried = await this.store.admit(app, runId, max);
    if (retried > 0) return retried;
    throw new ToolqError(
      'TOO_MANY_RUNS',
      `app ${app} has ${max} runs not finished yet, its most (TOOLQ_MAX_ACTIVE_RUNS_PER_APP): ` +
        'wait for one to finish, or cancel one',
    );
  }

  /** The run, if it exists and belongs to `app`. */
  async get(app: string, runId: string): Promise<RunRecord | undefined> {
    const record = await this.store.get(runId);
    return record && record.app === app ? record : undefined;
  }

  list(app: string, options: { limit: number; after?: string }): Promise<RunSummary[]> {
    return this.store.list(app, options);
  }

  /**
   * Cancels a running run of `app`. The calls of its unsaved turn are cancelled on their workers
   * from here, so that this works whether its owner is alive or not; the owner stops its loop.
   */
  async cancel(
    app: string,
    runId: string,
  ): Promise<{ kind: 'missing' } | { kind: 'finished' | 'cancelled'; status: RunRecord['status'] }> {
    const record = await this.get(app, runId);
    if (!record) return { kind: 'missing' };
    const reason = 'cancelled by DELETE /v1/runs/:id';
    const outcome = await this.store.cancel(runId, reason);
    if (outcome.kind === 'missing') return outcome;
    if (outcome.kind === 'finished') return { kind: 'finished', status: outcome.status };
    await this.store.release(app, runId);
    await this.redis.publish(runCancelChannel(this.prefix), runId);
    await wakeRun(this.redis, this.queue, this.prefix, runId).catch(() => undefined); // a parked run's job ends
    // Workers know a batch by the uid of its dispatch; the batch's name says which one that was.
    const keys = createKeys(this.prefix);
    await Promise.all(
      [...(await this.unfinishedBatches(runId, outcome.checkpoint))].map(async (batchName) => {
        const owner = await readBatchOwner(this.redis, keys.batchName(app, batchName));
        if (owner) {
          await publishCancel(this.redis, keys.cancelChannel(), {
            batchId: owner.uid,
            reason: `the run was ${reason}`,
          });
        }
      }),
    );
    await this.store.touchIndex(app);
    return { kind: 'cancelled', status: 'cancelled' };
  }

  /**
   * The names of a run's batches with calls not yet answered: those of its saved unfinished turn, and
   * those its log shows started but not finished (calls sent early, before the response was saved).
   */
  private async unfinishedBatches(
    runId: string,
    checkpoint: AgentCheckpoint | undefined,
  ): Promise<Set<string>> {
    const batches = new Set(Object.values(checkpoint?.pending?.refs ?? {}).map((r) => r.batchId));
    for (const batchName of (await this.store.unfinishedCalls(runId)).keys()) batches.add(batchName);
    return batches;
  }

  /**
   * Catches a cancel whose message this coordinator missed (a reconnect, say), and keeps the index
   * of each app with a run here alive: a run that runs longer than the retention stays listed.
   */
  private async pollStatuses(): Promise<void> {
    const ids = [...this.active.keys()];
    if (ids.length === 0) return;
    const rows = await Promise.all(ids.map((id) => this.store.statusAndApp(id)));
    ids.forEach((id, i) => {
      if (rows[i]?.status !== 'running')
        this.active.get(id)?.abort(new Error('the run is no longer running'));
    });
    const apps = new Set(rows.flatMap((r) => (r?.app ? [r.app] : [])));
    await Promise.all([...apps].map((app) => this.store.touchIndex(app, 2 * RUN_DEFAULTS.statusPollMs)));
  }

  /**
   * At the shutdown bound: hands every run here over now, mid-step (its model request and calls
   * are abandoned; the next owner asks again what was not saved).
   */
  handOverNow(): void {
    this.handingOver = true;
    for (const controller of this.active.values()) controller.abort(HAND_OVER_NOW);
  }

  /**
   * Stops taking runs; the runs here are handed over at their next model turn (their current
   * step finishes and is saved first) and go back to the queue for another coordinator.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.handingOver = true;
      clearInterval(this.pollTimer);
      await this.worker?.close();
      await this.queue.close();
      await this.events.close();
      await Promise.all([closeRedis(this.subscriber), closeRedis(this.redis)]);
    })();
    return this.closing;
  }
}

function newRunId(): string {
  return `run_${randomHex(24)}`;
}

/** The same key of the same app names the same run: a repeated POST finds it instead of making one. */
function idempotentRunId(app: string, key: string): string {
  return `run_${createHash('sha256').update(`${app}\n${key}`).digest('hex').slice(0, 24)}`;
}
