/** How the job processor turns a flow decision into a call's outcome (one small hook in job-processor.ts). */
import type { CallResult } from '@toolq/shared';
import type { ParsedJobData, WorkerMetrics } from '@toolq/shared/internal';
import type { FlowDecision } from './worker-flow.ts';

/** A tool queue's call that may not start yet: the job goes back to wait and the queue is held. */
export const FLOW_REQUEUE: unique symbol = Symbol('flow requeue');

/** A pool queue's call of a paused or held tool: the job is delayed until then. */
export class FlowHold {
  constructor(readonly until: number) {}
}

export async function flowOutcome(
  decision: Exclude<FlowDecision, { kind: 'start' }>,
  data: ParsedJobData,
  deps: {
    metrics: WorkerMetrics;
    pool: string;
    report(data: ParsedJobData, result: CallResult): Promise<CallResult>;
  },
): Promise<CallResult | undefined | typeof FLOW_REQUEUE | FlowHold> {
  if (decision.kind === 'requeue') return FLOW_REQUEUE;
  if (decision.kind === 'hold') return new FlowHold(decision.until);
  deps.metrics.jobs.inc({ tool: data.tool, pool: deps.pool, outcome: 'not_started' });
  await deps.report(data, decision.result);
  return data.reply ? undefined : decision.result;
}
