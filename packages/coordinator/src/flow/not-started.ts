/**
 * "Not started" at a deadline: a flow-controlled call that no worker admitted (a cap, a rate limit,
 * a downstream's hold, an operator's pause kept it waiting) is answered `not_started`, not
 * `timeout` — the caller learns that nothing ran. A worker marks a flow call started in its batch
 * record when it admits it (flow-store.ts markStarted); the barrier's last look reads the marks.
 */
import type { CallResult } from '@toolq/shared';
import {
  messages,
  type Redis,
  readHandedOff,
  readResults,
  readStarted,
  toolOfRoute,
} from '@toolq/shared/internal';
import { coordinatorResult, type LastLook } from '../barrier.ts';
import { DISPATCHER_DEFAULTS } from '../dispatch/options.ts';
import type { PendingBatches } from '../dispatch/pending.ts';
import { settleWithin } from '../dispatch/settle-within.ts';
import type { FlowView } from './flow-view.ts';

/** The Dispatcher's last look at a deadline: what Redis holds for the due calls, within a short bound. */
export function flowAwareLastLook(redis: Redis, pending: PendingBatches, flow: FlowView): LastLook {
  return (barrier, indexes) => {
    const entry = pending.get(barrier.uid);
    if (!entry) return Promise.resolve(new Map());
    const read = lastLookWithFlow(
      redis,
      pending.recordKey(entry),
      indexes,
      barrier.calls,
      (index) => entry.jobs[index]?.queue,
      (tool) => flow.whyWaiting(tool),
    );
    return settleWithin(read, DISPATCHER_DEFAULTS.lastLookMs).then((found) =>
      found instanceof Error ? new Map() : found,
    );
  };
}

/** The results Redis holds for due calls, plus a `not_started` answer for each flow call never admitted. */
export async function lastLookWithFlow(
  redis: Redis,
  recordKey: string,
  due: readonly number[],
  calls: readonly ({ tool: string; toolUseId: string } | undefined)[],
  queueOf: (index: number) => string | undefined,
  whyWaiting: (tool: string) => string,
): Promise<Map<number, CallResult>> {
  const sentToFlow = (index: number) => toolOfRoute(queueOf(index) ?? '') !== undefined;
  // A pool call a worker moved to its tool's queue (a limit came while it waited) is a flow call too.
  const poolCalls = due.filter((index) => !sentToFlow(index));
  const [found, started, moved] = await Promise.all([
    readResults(redis, recordKey, due),
    readStarted(redis, recordKey, due),
    readHandedOff(redis, recordKey, poolCalls),
  ]);
  const flowCalls = due.filter((index) => sentToFlow(index) || moved.has(index));
  for (const index of flowCalls) {
    const call = calls[index];
    if (found.has(index) || started.has(index) || !call) continue;
    found.set(
      index,
      coordinatorResult(
        call,
        'not_started',
        messages.notStarted(call.tool, `${whyWaiting(call.tool)}; its deadline passed first`),
      ),
    );
  }
  return found;
}
