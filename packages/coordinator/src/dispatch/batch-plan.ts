/**
 * Plans a batch before anything is enqueued, from the catalog's lookups and nothing else (no
 * Redis, no Dispatcher state): each call's timeout and deadline, the record a restarted
 * coordinator needs to collect it (where each call went, or the answer given at once), and the
 * jobs: each call routed to its pool's queue or a lane of it, grouped into as few jobs as the
 * route's live workers allow.
 */
import type { FailurePolicy, TraceCarrier } from '@toolq/shared';
import { type BatchMeta, idempotencyKeysOf, messages } from '@toolq/shared/internal';
import { type BarrierCall, coordinatorResult } from '../barrier.ts';
import type { ToolLookup } from '../catalog.ts';
import { buildJobData, groupJobs, type PlannedJob, type QueuedJob } from '../job-queues.ts';

/** Timeout of a call to a tool the catalog does not know (it is answered at once anyway). */
const UNKNOWN_TOOL_TIMEOUT_MS = 30_000;

export function planBatch(input: {
  toolUses: readonly { id: string; name: string }[];
  lookups: readonly ToolLookup[];
  startedAt: number;
  /** The caller's per-call timeout; a tool's own smaller timeout still wins. */
  timeoutMs: number | undefined;
}): { calls: BarrierCall[]; meta: BatchMeta; ttlMs: number } {
  const { toolUses, lookups, startedAt } = input;
  const calls: BarrierCall[] = toolUses.map((use, index) => {
    const lookup = lookups[index];
    const toolTimeout = lookup?.kind === 'ok' ? lookup.spec.timeoutMs : UNKNOWN_TOOL_TIMEOUT_MS;
    const timeoutMs = Math.max(1, Math.min(input.timeoutMs ?? toolTimeout, toolTimeout));
    return { index, toolUseId: use.id, tool: use.name, timeoutMs, deadline: startedAt + timeoutMs };
  });
  const meta: BatchMeta = {
    createdAt: startedAt,
    calls: calls.map(({ index, ...call }) => {
      const lookup = lookups[index];
      if (lookup?.kind === 'ok') return { ...call, pool: lookup.pool };
      const answer =
        lookup?.kind === 'no_worker'
          ? coordinatorResult(call, 'error', messages.noWorker(call.tool, lookup.pool))
          : coordinatorResult(call, 'unknown_tool', messages.unknownTool(call.tool));
      return { ...call, answer };
    }),
  };
  const lastDeadline = Math.max(startedAt, ...calls.map((c) => c.deadline));
  return { calls, meta, ttlMs: lastDeadline - startedAt };
}

/**
 * The jobs of a planned batch. Each call a live worker serves goes to the queue its lookup names
 * (a lane of the pool is written into the record's `queue`, the pool's own queue is not), and the
 * record names each call's job, so that a restarted coordinator can find it. Calls answered at
 * once (unknown tool, no worker) get no job.
 */
export function planJobs(input: {
  /** The dispatch's uid: what its jobs and replies are named by. */
  uid: string;
  calls: readonly BarrierCall[];
  /** planBatch's record; its calls get their lane and job here. */
  meta: BatchMeta;
  /** Undefined for a call held for approval (approvals/): no job until it is approved. */
  lookups: readonly (ToolLookup | undefined)[];
  /** The caller's tool_use blocks, for each call's input. */
  toolUses: readonly { input: unknown }[];
  /** Where workers write results and notify: the batch's record and this coordinator's reply stream. */
  batchKey: string;
  streamKey: string;
  options: {
    failurePolicy?: FailurePolicy;
    maxRetries?: number;
    app?: string;
    priority?: number;
    context?: Record<string, unknown>;
  };
  /** Gives the trace context each call's job carries; undefined unless tracing is on. */
  trace: { carrier(index: number): TraceCarrier | undefined } | undefined;
}): {
  queued: QueuedJob[];
  /** The jobs of calls of at-least-once tools (they may run twice), by call index. */
  mayRunTwice: (PlannedJob | undefined)[];
} {
  const { uid, calls, meta, lookups, batchKey, streamKey } = input;
  const planned: PlannedJob[] = [];
  const mayRunTwice: (PlannedJob | undefined)[] = [];
  const workersIn = new Map<string, number>();
  const keyOf = idempotencyKeysOf({ app: input.options.app ?? 'default', batchName: meta.id ?? uid });
  meta.calls.forEach((call, index) => {
    const lookup = lookups[index];
    if (!call.pool || lookup?.kind !== 'ok') return;
    workersIn.set(lookup.queue, Math.max(workersIn.get(lookup.queue) ?? 0, lookup.workers));
    if (lookup.queue !== call.pool) call.queue = lookup.queue;
    const reply = { batchId: uid, index, batchKey, streamKey };
    const data = buildJobData({
      call: calls[index] as BarrierCall,
      input: input.toolUses[index]?.input,
      reply,
      options: input.options,
    });
    if (input.trace) data.trace = input.trace.carrier(index);
    // By the batch's name, not the dispatch: a durable run's new owner dispatches the same name.
    data.idempotencyKey = keyOf(data.toolUseId);
    const job = { queue: lookup.queue, index, data };
    planned.push(job);
    if (lookup.spec.delivery !== 'at-most-once') mayRunTwice[index] = job;
  });
  const queued = groupJobs(uid, planned, (queue) => workersIn.get(queue) ?? 1);
  for (const job of queued) {
    for (const index of job.indexes) {
      const call = meta.calls[index];
      if (call) call.job = job.jobId; // so that a restarted coordinator can find the job
    }
  }
  return { queued, mayRunTwice };
}

/** A collected batch's barrier calls and jobs, from its record (not the record's copy: answers, job ids). */
export function collectPlan(meta: BatchMeta): {
  calls: BarrierCall[];
  refs: { queue: string; jobId: string; indexes: number[] }[];
} {
  const calls = meta.calls.map(({ toolUseId, tool, deadline, timeoutMs }, index) => ({
    index,
    toolUseId,
    tool,
    deadline,
    timeoutMs,
  }));
  const refs = meta.calls.flatMap(({ pool, queue, job }, index) =>
    pool && job ? [{ queue: queue ?? pool, jobId: job, indexes: [index] }] : [],
  );
  return { calls, refs };
}
