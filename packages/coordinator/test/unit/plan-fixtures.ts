/** Catalog lookups and planned batches for the unit tests: what the Catalog would answer, no Redis. */
import type { ToolSpec } from '@toolq/shared/internal';
import type { ToolLookup } from '../../src/catalog.ts';
import { planBatch, planJobs } from '../../src/dispatch/batch-plan.ts';

export const STARTED_AT = 1_700_000_000_000;
export const BATCH_KEY = 'toolq:batch:c1:uid-1';
export const STREAM_KEY = 'toolq:replies:c1';

export function spec(name: string, timeoutMs = 10_000, retry = false): ToolSpec {
  return {
    name,
    description: name,
    input_schema: { type: 'object' },
    timeoutMs,
    ...(retry ? { retry: { attempts: 3, backoffMs: 100 } } : {}),
  };
}

/** The spec of a tool that may not run twice (docs/delivery.md). */
export function atMostOnce(tool: ToolSpec): ToolSpec {
  return { ...tool, delivery: 'at-most-once' };
}

/** A tool live workers serve: in its pool's own queue unless `queue` names a lane. */
export function served(
  tool: ToolSpec,
  pool: string,
  workers: number,
  queue = pool,
): Extract<ToolLookup, { kind: 'ok' }> {
  return { kind: 'ok', spec: tool, pool, queue, workers };
}

export function uses(...names: string[]) {
  return names.map((name, i) => ({ id: `toolu_${i}`, name, input: { n: i } }));
}

/** planBatch then planJobs, as Dispatcher.prepare() runs them. */
export function plan(
  toolUses: readonly { id: string; name: string; input: unknown }[],
  lookups: readonly ToolLookup[],
  options: { timeoutMs?: number; maxRetries?: number; uid?: string } = {},
) {
  const { calls, meta, ttlMs } = planBatch({
    toolUses,
    lookups,
    startedAt: STARTED_AT,
    timeoutMs: options.timeoutMs,
  });
  const jobs = planJobs({
    uid: options.uid ?? 'uid-1',
    calls,
    meta,
    lookups,
    toolUses,
    batchKey: BATCH_KEY,
    streamKey: STREAM_KEY,
    options: options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries },
    trace: undefined,
  });
  return { calls, meta, ttlMs, ...jobs };
}
