/**
 * Flow control on a worker (docs/flow-control.md). A flow-controlled tool (one that declares a
 * limit, has an operator's override, or was held by its downstream) has one queue for the fleet,
 * `{tool=<name>}`, which every worker serving the tool consumes:
 * - the cap is BullMQ's global concurrency of that queue, checked in the Lua that moves a job to
 *   active: a job counts from then until it leaves `active`, a dead worker's until the stalled
 *   check moves it back (so never more than the cap run, and the slot comes back without a restart);
 * - the rate limit is a sliding log in Redis (flow-store.ts), asked once a job is active; a refused
 *   job goes back to wait and the queue is held (BullMQ's manual rate limit) until the log has room;
 * - a downstream's 429 (RateLimitedError) holds the queue the same way, and records the hold so
 *   that calls still in a pool queue wait too;
 * - an operator's pause is BullMQ's pause of the queue.
 * This class keeps the worker's view of the fleet's limits (re-read every second), starts the
 * consumers of the tool queues, and decides for each call whether it starts.
 */
import { CALL_PRIORITY, type CallResult, CONTRACT_VERSION, type Logger } from '@toolq/shared';
import {
  admitStart,
  type EffectiveLimits,
  effectiveLimits,
  type FlowKeys,
  type FlowState,
  fairTags,
  flowKeys,
  flowRoute,
  holdTool,
  isToolQueueName,
  type Keys,
  markHandedOff,
  markStarted,
  messages,
  type ParsedJobData,
  PLAIN_PRODUCER_APP,
  type Redis,
  readFlowState,
  toolOfRoute,
  type WorkerMetrics,
} from '@toolq/shared/internal';
import { type Job, Queue } from 'bullmq';
import type { ServedTools } from '../served-tools.ts';
import { WORKER_DEFAULTS } from '../worker-options.ts';

/** What the processor does with a call before it runs. */
export type FlowDecision =
  | { kind: 'start' }
  /** Answer at once: it cannot start before its deadline. */
  | { kind: 'answer'; result: CallResult }
  /** A tool queue's job: back to wait, the queue held (Worker.RateLimitError). */
  | { kind: 'requeue' }
  /** A pool queue's job: delayed until then (the tool is paused or held). */
  | { kind: 'hold'; until: number };

/** What BullMQ keeps of a handed-off call's job: an hour, at most 1,000 (as the coordinator's failed jobs). */
const HANDED_OFF_KEEP = { age: 3600, count: 1000 } as const;

export interface WorkerFlowOptions {
  redis: Redis;
  keys: Keys;
  tools: ServedTools;
  metrics: WorkerMetrics;
  logger: Logger;
  workerId: string;
  /** Starts a BullMQ consumer of a tool's queue (worker.ts owns the consumers). */
  consume(queueName: string): void;
}

export class WorkerFlow {
  private readonly flowKeys: FlowKeys;
  private state: FlowState = { overrides: new Map(), held: new Map() };
  private readonly consumed = new Set<string>();
  private readonly queues = new Map<string, Queue>();
  /** The cap last written into each tool queue's meta by this worker (undefined: unknown). */
  private readonly appliedCap = new Map<string, number | null>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WorkerFlowOptions) {
    this.flowKeys = flowKeys(options.keys.prefix);
  }

  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => {
      this.sync().catch((err: Error) => this.options.logger.warn({ err: err.message }, 'flow sync failed'));
    }, WORKER_DEFAULTS.flowSyncIntervalMs);
    this.timer.unref();
  }

  /** Re-reads the fleet's overrides and holds; starts consumers of newly flow-controlled tools. */
  async sync(): Promise<void> {
    this.state = await readFlowState(this.options.redis, this.flowKeys);
    for (const name of this.options.tools.names()) {
      if (!this.isFlowControlled(name)) continue;
      if (!this.consumed.has(name)) {
        this.consumed.add(name);
        this.options.consume(this.options.keys.queueName(flowRoute(name)));
        this.options.logger.info({ tool: name }, 'consuming the flow-controlled tool queue');
      }
      await this.applyCap(name);
    }
  }

  /** The definition's limits, an operator's override or a downstream's hold route a tool through its queue. */
  isFlowControlled(tool: string): boolean {
    const def = this.options.tools.get(tool);
    return (
      def?.concurrency !== undefined ||
      def?.rateLimit !== undefined ||
      this.state.overrides.has(tool) ||
      this.state.held.has(tool)
    );
  }

  limitsOf(tool: string): EffectiveLimits {
    const def = this.options.tools.get(tool);
    return effectiveLimits(
      {
        ...(def?.concurrency !== undefined ? { concurrency: def.concurrency } : {}),
        ...(def?.rateLimit !== undefined ? { rateLimit: def.rateLimit } : {}),
      },
      this.state.overrides.get(tool),
    );
  }

  /**
   * The cap in the queue's meta follows the limits in force (an override, else the definition);
   * the coordinator writes it too when an operator changes it, so this only repairs (a new queue,
   * a Redis that lost its data). Read each time: another worker or coordinator may have written it.
   */
  private async applyCap(tool: string): Promise<void> {
    const want = this.limitsOf(tool).concurrency;
    const metaKey = this.flowKeys.queueKey(tool, 'meta');
    const raw = await this.options.redis.hget(metaKey, 'concurrency');
    const have = raw === null ? null : Number(raw);
    if (have === want && this.appliedCap.get(tool) === want) return;
    const queue = this.queueOf(tool);
    if (want === null) await queue.removeGlobalConcurrency();
    else await queue.setGlobalConcurrency(want);
    this.appliedCap.set(tool, want);
  }

  private queueOf(tool: string): Queue {
    let queue = this.queues.get(tool);
    if (!queue) {
      const { redis, keys, logger } = this.options;
      queue = new Queue(keys.queueName(flowRoute(tool)), { connection: redis, prefix: keys.prefix });
      queue.on('error', (err) => logger.warn({ err: err.message, tool }, 'flow queue error'));
      this.queues.set(tool, queue);
    }
    return queue;
  }

  /**
   * True when beforeStart() would answer `start` without a look at Redis: a pool queue's call of a
   * tool without limits, pause or hold (what most calls are). Synchronous, so that such a call
   * costs no promise of its own.
   */
  startsAtOnce(job: Job, data: ParsedJobData): boolean {
    return !this.isFlowControlled(data.tool) && !isToolQueueName(job.queueName);
  }

  /**
   * Whether a call starts now. A pool queue's call costs a map lookup (a tool's calls enqueued
   * before it became flow-controlled, or by a plain producer, still respect a pause or a hold);
   * a tool queue's call asks the sliding log in Redis and marks itself started in its record.
   */
  async beforeStart(job: Job, data: ParsedJobData): Promise<FlowDecision> {
    const tool = toolOfRoute(job.queueName.slice(1, -1));
    const now = Date.now();
    if (tool === undefined) {
      const until = this.holdUntil(data.tool, now);
      if (until === undefined) {
        if (!data.reply || !this.hasLimits(data.tool)) return { kind: 'start' };
        // Sent to a pool queue before its tool got a cap or a rate limit: its start must count
        // against them, so the call moves to the tool's queue (the same reply path and deadline)
        // and its pool job waits out the deadline, by when the copy has answered (then the pool job
        // finds the call answered and completes; the lost-call sweep sees it delayed, not gone).
        await this.handOff(job, data, data.reply);
        return { kind: 'hold', until: data.deadline };
      }
      this.options.metrics.flowThrottled.inc({ tool: data.tool, reason: 'paused' });
      if (until >= data.deadline)
        return { kind: 'answer', result: this.notStarted(data, this.pauseReason(data.tool)) };
      return { kind: 'hold', until };
    }
    const limits = this.limitsOf(tool);
    const tag = typeof job.priority === 'number' ? job.priority : 0;
    const admission = await admitStart(this.options.redis, this.flowKeys, tool, {
      rateLimit: limits.rateLimit,
      member: `${job.id}:${job.attemptsStarted}:${now}`,
      tag,
      jobId: job.id ?? '',
      app: data.app ?? PLAIN_PRODUCER_APP,
      priority: data.priority ?? CALL_PRIORITY.default,
    });
    if (!admission.admitted) {
      const held = admission.why === 'held';
      this.options.metrics.flowThrottled.inc({ tool, reason: held ? 'downstream' : 'rate_limit' });
      const rate = limits.rateLimit;
      const nextStart = now + admission.waitMs;
      if (nextStart >= data.deadline) {
        const until = new Date(nextStart).toISOString();
        const why = held
          ? `the service it calls asked for no calls until ${until}, after this call's deadline`
          : `its rate limit (${rate?.max} calls per ${rate?.perMs} ms) is used up until ${until}, after this call's deadline`;
        return { kind: 'answer', result: this.notStarted(data, why) };
      }
      // The hold is in force already; the window's is set here, for every worker of the queue.
      if (!held) await this.holdQueue(tool, admission.waitMs);
      return { kind: 'requeue' };
    }
    this.options.metrics.flowSlotWait.observe({ tool }, Math.max(0, now - data.enqueuedAt) / 1000);
    // Not awaited (one round trip less before the tool starts): the connection sends it before the
    // call's result, and the coordinator looks only at the deadline.
    if (data.reply)
      markStarted(this.options.redis, data.reply.batchKey, data.reply.index, admission.at).catch(
        (err: Error) =>
          this.options.logger.warn({ err: err.message, tool }, 'could not mark a flow call started'),
      );
    return { kind: 'start' };
  }

  /** A cap or a rate limit in force (a pause or a hold alone keeps a pool queue's call where it is). */
  private hasLimits(tool: string): boolean {
    if (!this.isFlowControlled(tool)) return false;
    const limits = this.limitsOf(tool);
    return limits.concurrency !== null || limits.rateLimit !== null;
  }

  /**
   * Adds a pool queue's call to its tool's queue, with its fair-share tag. Its job id is the call's
   * own (`<batch uid>.<index>.flow`), so a second hand-off of it (the pool job given back and taken
   * again) adds nothing.
   */
  private async handOff(job: Job, data: ParsedJobData, reply: NonNullable<ParsedJobData['reply']>) {
    const jobId = `${reply.batchId}.${reply.index}.flow`;
    const [tag] = await fairTags(this.options.redis, this.flowKeys, data.tool, {
      app: data.app ?? PLAIN_PRODUCER_APP,
      priority: data.priority ?? CALL_PRIORITY.default,
      jobIds: [jobId],
    });
    await this.queueOf(data.tool).add(data.tool, data, {
      jobId,
      priority: Math.max(1, Number(tag ?? 1)),
      removeOnComplete: HANDED_OFF_KEEP,
      removeOnFail: HANDED_OFF_KEEP,
    });
    // Marked in its batch record, so that never admitted it is answered `not_started` at its
    // deadline, as a call sent to the tool's queue would be (coordinator flow/not-started.ts).
    await markHandedOff(this.options.redis, reply.batchKey, reply.index, Date.now()).catch((err: Error) =>
      this.options.logger.warn({ err: err.message, tool: data.tool }, 'could not mark a moved flow call'),
    );
    this.options.logger.debug(
      { tool: data.tool, job: job.id, to: jobId },
      'moved a pool call to its tool queue',
    );
  }

  /**
   * The tool threw RateLimitedError: no call of it starts in the fleet for `retryAfterMs`. The
   * call runs again after that when its deadline allows, else it is answered not started.
   */
  async onDownstreamLimit(
    job: Job,
    data: ParsedJobData,
    retryAfterMs: number,
    message: string,
  ): Promise<FlowDecision> {
    const tool = data.tool;
    const until = Date.now() + retryAfterMs;
    this.options.metrics.flowThrottled.inc({ tool, reason: 'downstream' });
    this.state.held.set(tool, Math.max(until, this.state.held.get(tool) ?? 0));
    if (retryAfterMs > 0) {
      await Promise.all([
        this.holdQueue(tool, retryAfterMs),
        holdTool(this.options.redis, this.flowKeys, tool, until),
      ]);
    }
    if (until >= data.deadline) {
      const why = `the service it calls refused it as rate limited (${message}); it could run again at ${new Date(until).toISOString()}, after this call's deadline`;
      return { kind: 'answer', result: this.notStarted(data, why) };
    }
    return toolOfRoute(job.queueName.slice(1, -1)) === undefined
      ? { kind: 'hold', until }
      : { kind: 'requeue' };
  }

  /**
   * BullMQ's manual rate limit on the tool's queue: no worker moves a job of it to active for `ms`.
   * When it ends, BullMQ wakes only the workers that ran into it; one blocked waiting for a job
   * would sleep its whole drain delay (a call put back with a priority adds no wake-up marker).
   * So the marker is added then: the worker it wakes adds the next one as it takes a job.
   */
  private async holdQueue(tool: string, ms: number): Promise<void> {
    await this.queueOf(tool).rateLimit(ms);
    const marker = this.flowKeys.queueKey(tool, 'marker');
    setTimeout(() => {
      this.options.redis.zadd(marker, 0, '0').catch(() => undefined);
    }, ms + 1).unref();
  }

  /** Until when a tool's calls in a pool queue wait: an operator's pause (re-checked each second) or a hold. */
  private holdUntil(tool: string, now: number): number | undefined {
    if (this.state.overrides.get(tool)?.paused) return now + WORKER_DEFAULTS.pausedRecheckMs;
    const held = this.state.held.get(tool);
    return held !== undefined && held > now ? held : undefined;
  }

  private pauseReason(tool: string): string {
    return this.state.overrides.get(tool)?.paused
      ? 'an operator paused the tool'
      : `the service it calls asked for no calls until ${new Date(this.state.held.get(tool) ?? 0).toISOString()}, after this call's deadline`;
  }

  notStarted(data: ParsedJobData, why: string): CallResult {
    return {
      v: CONTRACT_VERSION,
      toolUseId: data.toolUseId,
      tool: data.tool,
      outcome: 'not_started',
      content: messages.notStarted(data.tool, why),
      isError: true,
      worker: this.options.workerId,
      attempts: 0,
      enqueuedAt: data.enqueuedAt,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
