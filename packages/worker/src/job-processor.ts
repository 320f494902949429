/**
 * The worker's BullMQ processor: takes a job (a call, or a chunk of calls of one batch), decides
 * for each call whether it is still wanted and served here, runs it and reports its result into
 * the batch record (or returns it, for plain producers).
 */
import {
  type CallResult,
  CONTRACT_VERSION,
  type JobChunk,
  type JobData,
  jobChunkSchema,
  jobDataSchema,
  type Logger,
} from '@toolq/shared';
import {
  type CallLog,
  firstLineOf,
  type HeartbeatMemory,
  idempotencyKeyOf,
  isCallStillWanted,
  type Keys,
  messages,
  type ParsedJobData,
  PLAIN_PRODUCER_APP,
  type Redis,
  readWorkers,
  storeResult,
  type ToolSetMemory,
  type WorkerMetrics,
} from '@toolq/shared/internal';
import { DelayedError, type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { traceCall } from './call-tracing.ts';
import type { RunningCalls } from './cancel-listener.ts';
import { createResultCache } from './delivery/cache.ts';
import { createDeliveryGuard, type TrackedJob } from './delivery/guard.ts';
import { FLOW_REQUEUE, FlowHold, flowOutcome } from './flow/flow-outcome.ts';
import type { WorkerFlow } from './flow/worker-flow.ts';
import { trimForHistory } from './job-history.ts';
import { callProgress } from './progress-reporter.ts';
import { runCall } from './run-call.ts';
import type { ServedTools } from './served-tools.ts';
import { WORKER_DEFAULTS } from './worker-options.ts';

/** A call's result (plain producers), one per call of a chunk, or nothing (results went to the batch record). */
export type JobReturn = CallResult | (CallResult | undefined)[] | undefined;
export type ToolqJob = Job<JobData | JobChunk, JobReturn>;

/** The reason a call is aborted with when the worker stops: the call goes back to the queue. */
export class ShutdownAbort extends Error {
  override name = 'ShutdownAbort';
}

/** A call given back at a forced shutdown: the whole job goes back to the queue. */
export const GIVEN_BACK: unique symbol = Symbol('given back');
/** A call for a tool this worker does not serve, while another live worker of the pool does. */
export const NOT_SERVED: unique symbol = Symbol('not served');

/** How one call of a job ended: its result, nothing to return, or a reason to put the job back. */
export type CallOutcome =
  | CallResult
  | undefined
  | typeof GIVEN_BACK
  | typeof NOT_SERVED
  | typeof FLOW_REQUEUE
  | FlowHold;

export interface JobProcessorOptions {
  pool: string;
  workerId: string;
  tools: ServedTools;
  running: RunningCalls;
  redis: Redis;
  keys: Keys;
  metrics: WorkerMetrics;
  /** Calls of plain producers reach no coordinator: the worker adds them to the fleet's report. */
  callLog: CallLog;
  maxResultBytes: number;
  logger: Logger;
  /** Flow control (flow/worker-flow.ts): whether each call starts now. */
  flow?: WorkerFlow;
}

export type JobProcessor = (job: ToolqJob, token?: string, signal?: AbortSignal) => Promise<JobReturn>;

/**
 * Whether a call that has a reply target still wants running, as far as this worker can tell
 * without Redis. A batch answered early (deadline, abort) is announced on the cancel channel; only
 * a call that waited long enough to have missed that, or that ran before (given back, or stalled
 * on a dead worker), must ask Redis.
 */
export function stillWantedLocally(call: {
  /** The batch was announced cancelled on the cancel channel. */
  cancelled: boolean;
  /** The job ran before. */
  retried: boolean;
  enqueuedAt: number;
  now: number;
}): 'yes' | 'no' | 'ask-redis' {
  if (call.cancelled) return 'no';
  if (call.retried) return 'ask-redis';
  return call.now - call.enqueuedAt < WORKER_DEFAULTS.freshJobMs ? 'yes' : 'ask-redis';
}

/** What a job's calls' outcomes make of the job. */
export function settleJob(
  outcomes: readonly CallOutcome[],
  isChunk: boolean,
):
  | { kind: 'give-back' }
  | { kind: 'not-served' }
  | { kind: 'requeue' }
  | { kind: 'hold'; until: number }
  | { kind: 'done'; value: JobReturn } {
  if (outcomes.includes(GIVEN_BACK)) return { kind: 'give-back' };
  // Calls of it that did run here have their results in the batch record and are skipped.
  if (outcomes.includes(NOT_SERVED)) return { kind: 'not-served' };
  if (outcomes.includes(FLOW_REQUEUE)) return { kind: 'requeue' };
  const holds = outcomes.flatMap((o) => (o instanceof FlowHold ? [o.until] : []));
  if (holds.length > 0) return { kind: 'hold', until: Math.max(...holds) };
  // Calls without a reply target (plain producers) answer through the job's return value.
  const results = outcomes.map((o) => (typeof o === 'symbol' || o instanceof FlowHold ? undefined : o));
  if (isChunk) return { kind: 'done', value: results.some((r) => r !== undefined) ? results : undefined };
  return { kind: 'done', value: results[0] };
}

/** Outcomes a worker's operator hears of: the tool, its input or its deadline went wrong. */
const LOGGED_OUTCOMES: ReadonlySet<CallResult['outcome']> = new Set([
  'error',
  'unknown',
  'timeout',
  'invalid_input',
  'unknown_tool',
]);

/**
 * One warn line per failed or timed-out call, else a failing tool is silent on its worker. Names
 * and the result's first line only: never the call's input or its context (credentials, user data).
 */
function logFailedCall(logger: Logger, data: ParsedJobData, result: CallResult, batch: string): void {
  if (!LOGGED_OUTCOMES.has(result.outcome)) return;
  logger.warn(
    {
      tool: data.tool,
      tool_use_id: data.toolUseId,
      batch,
      outcome: result.outcome,
      attempts: result.attempts,
      ...(result.startedAt && result.finishedAt ? { ms: result.finishedAt - result.startedAt } : {}),
      message: firstLineOf(result.content),
    },
    'tool call failed',
  );
}

/** The result of a call whose deadline passed while it waited in the queue. */
export function lateTimeout(data: ParsedJobData, workerId: string): CallResult {
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

export function createJobProcessor(options: JobProcessorOptions): JobProcessor {
  const {
    pool,
    workerId: id,
    tools,
    running,
    redis,
    keys,
    metrics,
    callLog,
    maxResultBytes,
    logger,
    flow,
  } = options;
  const skip = (reason: string) => metrics.skipped.inc({ pool, reason });
  const delivery = createDeliveryGuard({ redis, keys, workerId: id, logger });
  const cache = createResultCache({ redis, keys, metrics, owner: id });

  /**
   * One BullMQ job: a call, or a chunk of calls of one batch run at once, each reporting its own
   * result. Calls given back at a forced shutdown put the whole job back in the queue; calls of it
   * that did finish are skipped when it runs again (their results are in the batch record).
   */
  const processor: JobProcessor = async (job, token, signal) => {
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
    // Noted under this worker's registry entry: if it dies, a coordinator settles the job in seconds.
    const tracked = delivery.track(job, token);
    try {
      return await processJob(job, token, calls, chunk.success, callControllers, tracked);
    } finally {
      signal?.removeEventListener('abort', onBullAbort);
      tracked.done();
    }
  };

  const processJob = async (
    job: ToolqJob,
    token: string | undefined,
    calls: unknown[],
    isChunk: boolean,
    callControllers: Set<AbortController>,
    tracked: TrackedJob,
  ): Promise<JobReturn> => {
    const settled = await Promise.allSettled(
      calls.map((raw) => processCall(job, raw, callControllers, tracked)),
    );
    const outcomes = settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
    const settlement = settleJob(outcomes, isChunk);
    if (settlement.kind === 'give-back') {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (settlement.kind === 'not-served') {
      await job.moveToDelayed(Date.now() + WORKER_DEFAULTS.notServedDelayMs, token);
      throw new DelayedError();
    }
    // A tool queue's call refused a start: back to wait, the queue held (flow/worker-flow.ts).
    if (settlement.kind === 'requeue') throw Worker.RateLimitError();
    if (settlement.kind === 'hold') {
      await job.moveToDelayed(settlement.until, token);
      throw new DelayedError();
    }
    const trimming = trimForHistory(job, logger);
    if (trimming) await trimming;
    return settlement.value;
  };

  /** Runs one call; its result is reported before this returns (and returned for plain producers). */
  const processCall = async (
    job: ToolqJob,
    raw: unknown,
    /** The job's calls' controllers, aborted together when BullMQ aborts the job. */
    jobCalls: Set<AbortController>,
    tracked: TrackedJob,
  ): Promise<CallOutcome> => {
    const parsed = jobDataSchema.safeParse(raw);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `job ${job.id} does not follow toolq contract v1 or v2: ${parsed.error.message}`,
      );
    }
    const data = parsed.data;
    if (data.reply && !(await stillWanted(job, data.reply, data.enqueuedAt))) {
      skip('already_answered');
      return undefined;
    }
    if (Date.now() >= data.deadline) {
      skip('deadline_passed');
      const late = lateTimeout(data, id);
      logFailedCall(logger, data, late, data.reply?.batchId ?? String(job.id));
      return report(data, late);
    }
    if (!tools.has(data.tool) && (await servedElsewhere(data.tool))) {
      skip('tool_not_served');
      return NOT_SERVED;
    }
    // The common cases without an await (a promise per call): no flow control, no start marker.
    const gate = flow && !flow.startsAtOnce(job, data) ? await flow.beforeStart(job, data) : undefined;
    if (gate && gate.kind !== 'start') return flowOutcome(gate, data, { metrics, pool, report });
    const idempotencyKey = idempotencyKeyOf(data, String(job.id));
    const tool = tools.get(data.tool);
    const refused =
      tool?.delivery === 'at-most-once'
        ? await delivery.beforeStart(data, tool, idempotencyKey, tracked)
        : undefined;
    if (refused) {
      metrics.jobs.inc({ tool: data.tool, pool, outcome: refused.outcome });
      logFailedCall(logger, data, refused, data.reply?.batchId ?? String(job.id));
      return report(data, refused);
    }
    const controller = new AbortController();
    jobCalls.add(controller);
    // The contract's reply.batchId is the dispatch's uid; a plain producer's job has only its own id.
    const batchUid = data.reply?.batchId ?? String(job.id);
    const forget = running.add(batchUid, data.reply?.index ?? 0, controller);
    const progress = callProgress({ redis, data, logger });
    try {
      metrics.queueWait.observe({ pool }, Math.max(0, Date.now() - data.enqueuedAt) / 1000);
      let rateLimited: { retryAfterMs: number; message: string } | undefined;
      const result = await cache.run(tools.get(data.tool), data, controller.signal, () =>
        runCall({
          tools,
          data,
          workerId: id,
          batchUid,
          idempotencyKey,
          maxResultBytes,
          signal: controller.signal,
          onRateLimited: (retryAfterMs, message) => {
            rateLimited = { retryAfterMs, message };
          },
          reportProgress: progress.report,
        }),
      );
      const closing = progress.close();
      if (closing) await closing; // the reports sent reach the coordinator before the result
      if (rateLimited && flow) {
        await delivery.refused(tools.get(data.tool), idempotencyKey);
        const decision = await flow.onDownstreamLimit(
          job,
          data,
          rateLimited.retryAfterMs,
          rateLimited.message,
        );
        if (decision.kind !== 'start') return flowOutcome(decision, data, { metrics, pool, report });
      }
      // Given back: another worker runs it, within the same deadline.
      if (controller.signal.reason instanceof ShutdownAbort && result.outcome === 'cancelled')
        return GIVEN_BACK;
      // Names come from producers: tools this worker does not serve share one label value.
      const tool = tools.has(data.tool) ? data.tool : '_unknown';
      metrics.jobs.inc({ tool, pool, outcome: result.outcome });
      if (result.startedAt && result.finishedAt) {
        metrics.duration.observe({ tool, pool }, (result.finishedAt - result.startedAt) / 1000);
      }
      logFailedCall(logger, data, result, batchUid);
      await report(data, result);
      traceCall(data, result, { pool, worker: id });
      if (!data.reply) {
        const ms = (result.finishedAt ?? 0) - (result.startedAt ?? 0);
        callLog.record(tool, ms, !result.isError, Date.now(), PLAIN_PRODUCER_APP, result.outcome);
      }
      // With a reply target the result is in the batch record already; BullMQ need not store and
      // broadcast it a second time. Plain producers (no reply) get it as the job's return value.
      return data.reply ? undefined : result;
    } finally {
      void progress.close();
      forget();
      jobCalls.delete(controller);
    }
  };

  /** Whether a call still wants running: see stillWantedLocally(); Redis decides the rest. */
  async function stillWanted(
    job: ToolqJob,
    reply: NonNullable<ParsedJobData['reply']>,
    enqueuedAt: number,
  ): Promise<boolean> {
    const local = stillWantedLocally({
      cancelled: running.wasCancelled(reply.batchId),
      retried: job.attemptsStarted > 1 || job.stalledCounter > 0,
      enqueuedAt,
      now: Date.now(),
    });
    if (local !== 'ask-redis') return local === 'yes';
    return isCallStillWanted(redis, reply.batchKey, reply.index);
  }

  const heartbeats: HeartbeatMemory = new Map(); // see readWorkers: survives a failover's older heartbeats
  const toolSets: ToolSetMemory = new Map(); // the other workers' specs, read again only when changed
  /** Whether another live worker of this pool serves the tool (else the call is `Unknown tool`). */
  async function servedElsewhere(tool: string): Promise<boolean> {
    const { live } = await readWorkers(redis, keys, Date.now(), heartbeats, toolSets);
    return live.some((w) => w.pool === pool && w.id !== id && w.tools.some((t) => t.name === tool));
  }

  async function report(data: ParsedJobData, result: CallResult): Promise<CallResult> {
    if (!data.reply) return result;
    const stored = await storeResult(redis, { ...data.reply, deadline: data.deadline }, result);
    if (stored !== 'written') skip(stored === 'duplicate' ? 'duplicate_delivery' : 'batch_gone');
    return result;
  }

  return processor;
}
