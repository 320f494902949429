/**
 * Plans a batch before anything is enqueued: each call's timeout and deadline, and the record a
 * restarted coordinator needs to collect it (where each call went, or the answer given at once).
 */
import { type BatchMeta, messages } from '@toolq/shared/internal';
import { type BarrierCall, coordinatorResult } from './barrier.ts';
import type { ToolLookup } from './catalog.ts';

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
