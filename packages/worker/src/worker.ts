/**
 * A toolq worker: one BullMQ Worker on a pool's queue that runs tool calls and reports each
 * result into its batch record and its coordinator's reply stream.
 */
import { hostname } from 'node:os';
import {
  type AnyTool,
  type CallResult,
  CONTRACT_VERSION,
  createLogger,
  type JobChunk,
  type JobData,
  jobChunkSchema,
  jobDataSchema,
  type Logger,
  type RedisConnectionConfig,
  ToolqError,
} from '@toolq/shared';
import {
  CallLog,
  closeRedis,
  createKeys,
  createRedis,
  createRegistry,
  createWorkerMetrics,
  DEFAULTS,
  duplicateConnection,
  type HeartbeatMemory,
  inputJsonSchema,
  isCallStillWanted,
  laneOf,
  messages,
  type ParsedJobData,
  publishPoolMode,
  type Registry,
  readWorkers,
  storeResult,
  type ToolSpec,
  whyNotWritable,
} from '@toolq/shared/internal';
import { DelayedError, type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { traceCall } from './call-tracing.ts';
import { listenForCancels, RunningCalls } from './cancel-listener.ts';
import { startHeartbeat } from './heartbeat.ts';
import { runCall } from './run-call.ts';
import type { ToolSource } from './tool-source.ts';

export interface WorkerOptions {
  /** The tools this worker serves. */
  tools: readonly AnyTool[];
  /** Default: `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Redis Cluster, Sentinel or standalone (`loadConfig().redis`); wins over `redisUrl`. */
  redis?: RedisConnectionConfig;
  /** Key prefix. Default `toolq`. */
  prefix?: string;
  /** Queue (pool) to serve. Default `default`. */
  pool?: string;
  /**
   * Calls for this pool's tools wait in the queue (within their deadlines) when no worker is alive,
   * for one to start, instead of being answered is_error at once: for pools scaled to zero.
   * Default false.
   */
  waitForWorkers?: boolean;
  /** BullMQ jobs run at once, per queue consumed (the pool's and the lane). Default 32. */
  concurrency?: number;
  /** Timeout of a tool that declares none. Default 30 000 ms. */
  defaultTimeoutMs?: number;
  /** Results larger than this (serialised) become errors. Default 1 000 000 bytes. */
  maxResultBytes?: number;
  /** How long `close()` lets running calls finish before giving them back to the queue. Default 10 000 ms. */
  shutdownTimeoutMs?: number;
  /** Default: a pino logger named `toolq-worker`. */
  logger?: Logger;
  /** Default: a new registry with process metrics. */
  registry?: Registry;
  /** Default: `<host>-<pid>-<random>`. */
  id?: string;
  /** Tools that change at run time (MCP servers), served beside `tools` and re-advertised on change. */
  toolSource?: ToolSource;
}

export interface ToolqWorker {
  readonly id: string;
  readonly pool: string;
  readonly registry: Registry;
  /** True while Redis takes writes and the BullMQ worker runs. */
  isReady(): Promise<boolean>;
  /** Why the worker is not ready, or undefined when it is. */
  readiness(): Promise<string | undefined>;
  /**
   * Stage 1: stop taking jobs, let running calls finish within `shutdownTimeoutMs`, then give the
   * rest back to the queue. Calling it again returns the same promise.
   */
  close(): Promise<void>;
  /** Stage 2 (a second signal): give running calls back at once. */
  forceClose(): Promise<void>;
}

/** Younger jobs skip the batch-record check (one Redis round trip per call); see stillWanted(). */
const FRESH_JOB_MS = 1_000;

/** A call's result (plain producers), one per call of a chunk, or nothing (results went to the batch record). */
type JobReturn = CallResult | (CallResult | undefined)[] | undefined;

const GIVEN_BACK: unique symbol = Symbol('given back');
/** A call for a tool this worker does not serve, while another live worker of the pool does. */
const NOT_SERVED: unique symbol = Symbol('not served');
/** A job given back for a tool this worker lacks waits this long, so that another worker takes it. */
const NOT_SERVED_DELAY_MS = 100;

class ShutdownAbort extends Error {
  override name = 'ShutdownAbort';
}

export async function startWorker(options: WorkerOptions): Promise<ToolqWorker> {
  const pool = options.pool ?? DEFAULTS.pool;
  const keys = createKeys(options.prefix ?? DEFAULTS.prefix);
  const queueName = keys.queueName(pool);
  const id = options.id ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const logger = (options.logger ?? createLogger({ name: 'toolq-worker' })).child({ worker: id, pool });
  const registry = options.registry ?? createRegistry({ labels: { component: 'worker' } });
  const metrics = createWorkerMetrics(registry);
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULTS.defaultTimeoutMs;
  const maxResultBytes = options.maxResultBytes ?? DEFAULTS.maxResultBytes;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs;
  const concurrency = options.concurrency ?? DEFAULTS.concurrency;

  const tools = new Map<string, AnyTool>();
  for (const tool of options.tools) {
    if (tools.has(tool.name))
      throw new ToolqError('TOOL_DEFINITION_INVALID', `tool ${tool.name} is listed twice`);
    tools.set(tool.name, tool);
  }
  const fixedTools = new Map(tools);
  const specOf = (tool: AnyTool): ToolSpec => ({
    name: tool.name,
    description: tool.description,
    input_schema: inputJsonSchema(tool),
    timeoutMs: tool.timeoutMs ?? defaultTimeoutMs,
    ...(tool.retry
      ? { retry: { attempts: tool.retry.attempts, backoffMs: tool.retry.backoffMs ?? 200 } }
      : {}),
  });
  // The served set changes in place (`tools` is read per call), so the processor needs no hook.
  const refreshSourceTools = (): ToolSpec[] => {
    tools.clear();
    for (const [name, tool] of fixedTools) tools.set(name, tool);
    for (const tool of options.toolSource?.tools() ?? []) {
      if (tools.has(tool.name))
        logger.error({ tool: tool.name }, 'tool source offers a name already served: not served');
      else tools.set(tool.name, tool);
    }
    return [...tools.values()].map(specOf);
  };
  const specs = refreshSourceTools();

  const redis = createRedis(options.redis ?? options.redisUrl);
  const subscriber = duplicateConnection(redis);
  const running = new RunningCalls();
  for (const conn of [redis, subscriber])
    conn.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));

  const skip = (reason: string) => metrics.skipped.inc({ pool, reason });
  // Calls of plain producers reach no coordinator: the worker adds them to the fleet's report.
  const callLog = new CallLog({ redis, prefix: keys.prefix, logger });

  /**
   * One BullMQ job: a call, or a chunk of calls of one batch run at once, each reporting its own
   * result. Calls given back at a forced shutdown put the whole job back in the queue; calls of it
   * that did finish are skipped when it runs again (their results are in the batch record).
   */
  const processor = async (job: Job<JobData | JobChunk, JobReturn>, token?: string, signal?: AbortSignal) => {
    const chunk = jobChunkSchema.safeParse(job.data);
    const calls: unknown[] = chunk.success ? chunk.data.chunk : [job.data];
    // allSettled: a malformed call fails the job only once every other call has reported.
    // One listener on BullMQ's signal for the whole job: a chunk's 16 calls each listening would
    // trip Node's MaxListenersExceededWarning.
    const callControllers = new Set<AbortController>();
    const onBullAbort = () => {
      for (const c of callControllers) c.abort(signal?.reason ?? new Error('cancelled by BullMQ'));
    };
    signal?.addEventListener('abort', onBullAbort, { once: true });
    const settled = await Promise.allSettled(
      calls.map((raw) => processCall(job, raw, callControllers)),
    ).finally(() => signal?.removeEventListener('abort', onBullAbort));
    const outcomes = settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
    if (outcomes.includes(GIVEN_BACK)) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (outcomes.includes(NOT_SERVED)) {
      // Calls of it that did run here have their results in the batch record and are skipped.
      await job.moveToDelayed(Date.now() + NOT_SERVED_DELAY_MS, token);
      throw new DelayedError();
    }
    // Calls without a reply target (plain producers) answer through the job's return value.
    const results = outcomes.map((o) => (typeof o === 'symbol' ? undefined : o));
    if (chunk.success) return results.some((r) => r !== undefined) ? results : undefined;
    return results[0];
  };

  /** Runs one call; its result is reported before this returns (and returned for plain producers). */
  const processCall = async (
    job: Job<JobData | JobChunk, JobReturn>,
    raw: unknown,
    /** The job's calls' controllers, aborted together when BullMQ aborts the job. */
    jobCalls: Set<AbortController>,
  ): Promise<CallResult | undefined | typeof GIVEN_BACK | typeof NOT_SERVED> => {
    const parsed = jobDataSchema.safeParse(raw);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `job ${job.id} does not follow toolq contract v1: ${parsed.error.message}`,
      );
    }
    const data = parsed.data;
    // A job that ran before (given back, or stalled on a dead worker) always asks Redis.
    const retried = job.attemptsStarted > 1 || job.stalledCounter > 0;
    if (data.reply && !(await stillWanted(data.reply, retried ? 0 : data.enqueuedAt))) {
      skip('already_answered');
      return undefined;
    }
    if (Date.now() >= data.deadline) {
      skip('deadline_passed');
      return report(data, lateTimeout(data, id));
    }
    if (!tools.has(data.tool) && (await servedElsewhere(data.tool))) {
      skip('tool_not_served');
      return NOT_SERVED;
    }
    const controller = new AbortController();
    jobCalls.add(controller);
    const forget = running.add(data.reply?.batchId ?? String(job.id), data.reply?.index ?? 0, controller);
    try {
      metrics.queueWait.observe({ pool }, Math.max(0, Date.now() - data.enqueuedAt) / 1000);
      const result = await runCall({
        tools,
        data,
        workerId: id,
        batchId: data.reply?.batchId ?? String(job.id),
        maxResultBytes,
        signal: controller.signal,
      });
      // Given back: another worker runs it, within the same deadline.
      if (controller.signal.reason instanceof ShutdownAbort && result.outcome === 'cancelled')
        return GIVEN_BACK;
      // Names come from producers: tools this worker does not serve share one label value.
      const tool = tools.has(data.tool) ? data.tool : '_unknown';
      metrics.jobs.inc({ tool, pool, outcome: result.outcome });
      if (result.startedAt && result.finishedAt) {
        metrics.duration.observe({ tool, pool }, (result.finishedAt - result.startedAt) / 1000);
      }
      await report(data, result);
      traceCall(data, result, { pool, worker: id });
      if (!data.reply)
        callLog.record(tool, (result.finishedAt ?? 0) - (result.startedAt ?? 0), !result.isError);
      // With a reply target the result is in the batch record already; BullMQ need not store and
      // broadcast it a second time. Plain producers (no reply) get it as the job's return value.
      return data.reply ? undefined : result;
    } finally {
      forget();
      jobCalls.delete(controller);
    }
  };

  /**
   * Whether a call still wants running. A batch answered early (deadline, abort) is announced on
   * the cancel channel; only a call that waited long enough to have missed that asks Redis.
   */
  async function stillWanted(
    reply: NonNullable<ParsedJobData['reply']>,
    enqueuedAt: number,
  ): Promise<boolean> {
    if (running.wasCancelled(reply.batchId)) return false;
    if (Date.now() - enqueuedAt < FRESH_JOB_MS) return true; // enqueuedAt 0: always ask
    return isCallStillWanted(redis, reply.batchKey, reply.index);
  }

  const heartbeats: HeartbeatMemory = new Map(); // see readWorkers: survives a failover's older heartbeats
  /** Whether another live worker of this pool serves the tool (else the call is `Unknown tool`). */
  async function servedElsewhere(tool: string): Promise<boolean> {
    const { live } = await readWorkers(redis, keys, Date.now(), heartbeats);
    return live.some((w) => w.pool === pool && w.id !== id && w.tools.some((t) => t.name === tool));
  }

  async function report(data: ParsedJobData, result: CallResult): Promise<CallResult> {
    if (!data.reply) return result;
    const stored = await storeResult(redis, { ...data.reply, deadline: data.deadline }, result);
    if (stored !== 'written') skip(stored === 'duplicate' ? 'duplicate_delivery' : 'batch_gone');
    return result;
  }

  // Two consumers: the pool's shared queue and this tool set's lane (lanes.ts explains the routing).
  const lane = laneOf(pool, [...tools.keys()]);
  const bullConnection = duplicateConnection(redis);
  bullConnection.on('error', () => undefined); // BullMQ reports it through the worker's 'error' event
  const consume = (name: string) => {
    const consumer = new Worker<JobData | JobChunk, JobReturn>(name, processor, {
      connection: bullConnection,
      prefix: keys.prefix,
      concurrency,
      // A killed worker's jobs come back after this long; its calls are answered by their deadline anyway.
      lockDuration: 30_000,
      maxStalledCount: 1,
    });
    consumer.on('error', (err) => logger.warn({ err: err.message, queue: name }, 'bullmq worker error'));
    return consumer;
  };
  const consumers = [consume(queueName), consume(keys.queueName(lane))];
  const worker = {
    isRunning: () => consumers.every((c) => c.isRunning()),
    close: () => Promise.all(consumers.map((c) => c.close())).then(() => undefined),
  };

  await Promise.all([
    ...consumers.map((c) => c.waitUntilReady()),
    listenForCancels({ subscriber, channel: keys.cancelChannel(), running, logger }),
  ]);
  await publishPoolMode(redis, keys, pool, options.waitForWorkers ?? false, specs);
  const heartbeat = await startHeartbeat({
    redis,
    keys,
    logger,
    info: {
      id,
      pool,
      lane,
      host: hostname(),
      pid: process.pid,
      concurrency,
      startedAt: Date.now(),
      tools: specs,
    },
  });
  logger.info({ tools: [...tools.keys()], concurrency }, 'worker started');
  const stopWatchingSource = options.toolSource?.onChange(() => {
    heartbeat.update(refreshSourceTools());
    logger.info({ tools: [...tools.keys()] }, 'served tools changed');
  });
  if (options.toolSource) heartbeat.update(refreshSourceTools()); // a change while BullMQ connected

  let closing: Promise<void> | undefined;
  /** A full Redis answers PING but refuses the result writes: probe with a write. */
  const readiness = async (): Promise<string | undefined> => {
    if (closing) return 'the worker is shutting down';
    if (!worker.isRunning()) return 'the BullMQ worker is not running';
    // A write in each slot this worker depends on: on a cluster they may be on different masters.
    return whyNotWritable(redis, [keys.poolProbe(pool), keys.poolProbe(lane), keys.workersProbe()]);
  };
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info('stopping: no new jobs, letting running calls finish');
      stopWatchingSource?.();
      await heartbeat.stop();
      const graceful = worker.close();
      const timer = setTimeout(() => {
        logger.warn({ shutdownTimeoutMs }, 'running calls did not finish in time: giving them back');
        running.abortAll(new ShutdownAbort('worker shutting down'));
      }, shutdownTimeoutMs);
      timer.unref();
      await graceful;
      clearTimeout(timer);
      await callLog.close();
      await Promise.all([closeRedis(redis), closeRedis(subscriber), closeRedis(bullConnection)]);
      logger.info('worker stopped');
    })();
    return closing;
  };

  return {
    id,
    pool,
    registry,
    isReady: async () => (await readiness()) === undefined,
    readiness,
    close,
    forceClose: async () => {
      running.abortAll(new ShutdownAbort('worker shutting down (forced)'));
      await close();
    },
  };
}

function lateTimeout(data: ParsedJobData, workerId: string): CallResult {
  return {
    v: CONTRACT_VERSION,
    toolUseId: data.toolUseId,
    tool: data.tool,
    outcome: 'timeout',
    content: messages.timeout(data.tool, data.timeoutMs),
    isError: true,
    worker: workerId,
    attempts: 0,
    enqueuedAt: data.enqueuedAt,
  };
}
