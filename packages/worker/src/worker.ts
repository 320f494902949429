/**
 * A toolq worker: BullMQ Workers on a pool's queue and its lane that run tool calls (job-processor.ts)
 * and report each result into its batch record and its coordinator's reply stream.
 */
import { hostname } from 'node:os';
import { createLogger, type JobChunk, type JobData } from '@toolq/shared';
import {
  CallLog,
  closeRedis,
  createKeys,
  createRedis,
  createRegistry,
  createWorkerMetrics,
  duplicateConnection,
  laneOf,
  processId,
  type Registry,
  routeOfQueueName,
  whyNotWritable,
} from '@toolq/shared/internal';
import { Worker } from 'bullmq';
import { listenForCancels, RunningCalls } from './cancel-listener.ts';
import { WorkerFlow } from './flow/worker-flow.ts';
import { startHeartbeat } from './heartbeat.ts';
import { createJobProcessor, type JobReturn, ShutdownAbort } from './job-processor.ts';
import { startLiveness } from './liveness/liveness.ts';
import { ServedTools } from './served-tools.ts';
import { WORKER_DEFAULTS, type WorkerOptions } from './worker-options.ts';

export type { WorkerOptions } from './worker-options.ts';

/** A limiter BullMQ's own counting never reaches: only worker-flow.ts's holds stop the tool queue. */
const FLOW_LIMITER_MAX = 1e15;

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

export async function startWorker(options: WorkerOptions): Promise<ToolqWorker> {
  const pool = options.pool ?? WORKER_DEFAULTS.pool;
  const keys = createKeys(options.prefix ?? WORKER_DEFAULTS.prefix);
  const queueName = keys.queueName(pool);
  const id = options.id ?? processId();
  const logger = (options.logger ?? createLogger({ name: WORKER_DEFAULTS.loggerName })).child({
    worker: id,
    pool,
  });
  const registry = options.registry ?? createRegistry({ labels: { component: 'worker' } });
  const metrics = createWorkerMetrics(registry);
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? WORKER_DEFAULTS.shutdownTimeoutMs;
  const concurrency = options.concurrency ?? WORKER_DEFAULTS.concurrency;

  const tools = new ServedTools(options.tools, {
    ...(options.toolSource ? { source: options.toolSource } : {}),
    defaultTimeoutMs: options.defaultTimeoutMs ?? WORKER_DEFAULTS.defaultTimeoutMs,
    logger,
  });
  const specs = tools.refresh();

  const redis = createRedis(options.redis ?? options.redisUrl);
  const subscriber = duplicateConnection(redis);
  const running = new RunningCalls();
  for (const conn of [redis, subscriber])
    conn.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));

  // Calls of plain producers reach no coordinator: the worker adds them to the fleet's report.
  const callLog = new CallLog({ redis, prefix: keys.prefix, logger });
  const consumers: Worker<JobData | JobChunk, JobReturn>[] = [];
  /** Queue → BullMQ worker id of each consumer, for the liveness entry (dead workers' jobs are found by them). */
  const consumerIds = new Map<string, string>();
  let liveness: ReturnType<typeof startLiveness> | undefined;
  const flow = new WorkerFlow({
    redis,
    keys,
    tools,
    metrics,
    logger,
    workerId: id,
    consume: (name) => {
      consumers.push(consume(name, true));
    },
  });
  const processor = createJobProcessor({
    pool,
    workerId: id,
    tools,
    running,
    redis,
    keys,
    metrics,
    callLog,
    maxResultBytes: options.maxResultBytes ?? WORKER_DEFAULTS.maxResultBytes,
    logger,
    flow,
  });

  // Two consumers: the pool's shared queue and this tool set's lane (lanes.ts explains the routing).
  const lane = laneOf(pool, tools.names());
  const bullConnection = duplicateConnection(redis);
  bullConnection.on('error', () => undefined); // BullMQ reports it through the worker's 'error' event
  function consume(name: string, flowControlled = false) {
    const consumer = new Worker<JobData | JobChunk, JobReturn>(name, processor, {
      connection: bullConnection,
      prefix: keys.prefix,
      concurrency,
      lockDuration: WORKER_DEFAULTS.lockDurationMs,
      maxStalledCount: WORKER_DEFAULTS.maxStalledCount,
      ...(flowControlled
        ? {
            lockDuration: WORKER_DEFAULTS.flowLockDurationMs,
            stalledInterval: WORKER_DEFAULTS.flowLockDurationMs,
            // Seconds a worker waits for a job before it looks again: a hold's end is announced
            // (worker-flow.ts), this bounds the wait if the worker that would announce it died.
            drainDelay: WORKER_DEFAULTS.flowDrainDelaySeconds,
            // BullMQ checks a queue's manual hold (queue.rateLimit) only for a consumer with a
            // limiter; this one never limits by itself (worker-flow.ts holds the queue).
            limiter: { max: FLOW_LIMITER_MAX, duration: WORKER_DEFAULTS.flowLockDurationMs },
          }
        : {}),
    });
    consumer.on('error', (err) => logger.warn({ err: err.message, queue: name }, 'bullmq worker error'));
    // Named in the liveness entry: the lock tokens it takes jobs under start with its id.
    const queue = routeOfQueueName(name);
    consumerIds.set(queue, consumer.id);
    liveness?.addConsumer(queue, consumer.id);
    return consumer;
  }
  consumers.push(consume(queueName), consume(keys.queueName(lane)));
  const worker = {
    isRunning: () => consumers.every((c) => c.isRunning()),
    close: () => Promise.all(consumers.map((c) => c.close())).then(() => undefined),
  };

  await flow.start();
  await Promise.all([
    ...consumers.map((c) => c.waitUntilReady()),
    listenForCancels({ subscriber, channel: keys.cancelChannel(), running, logger }),
  ]);
  const heartbeat = await startHeartbeat({
    redis,
    keys,
    logger,
    waitForWorkers: options.waitForWorkers ?? WORKER_DEFAULTS.waitForWorkers,
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
  // Beats from a thread of its own: a busy event loop is not taken for a dead worker (docs/delivery.md).
  liveness = startLiveness({
    redis: options.redis ?? options.redisUrl,
    prefix: keys.prefix,
    workerId: id,
    everyMs: WORKER_DEFAULTS.heartbeatIntervalMs,
    logger,
    connection: redis,
    keys,
    consumers: consumerIds,
  });
  logger.info({ tools: tools.names(), concurrency }, 'worker started');
  const stopWatchingSource = options.toolSource?.onChange(() => {
    heartbeat.update(tools.refresh());
    logger.info({ tools: tools.names() }, 'served tools changed');
  });
  if (options.toolSource) heartbeat.update(tools.refresh()); // a change while BullMQ connected

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
      // The bound counts from the signal: stopping the liveness thread can take a while on a
      // loaded machine, and running calls must not get that time on top of the bound.
      const timer = setTimeout(() => {
        logger.warn({ shutdownTimeoutMs }, 'running calls did not finish in time: giving them back');
        running.abortAll(new ShutdownAbort('worker shutting down'));
      }, shutdownTimeoutMs);
      timer.unref();
      // No new jobs from now on: a call given back at the bound must not come back to this worker.
      const graceful = worker.close();
      await Promise.all([heartbeat.stop(), liveness.stop(), graceful]);
      clearTimeout(timer);
      await flow.close();
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
