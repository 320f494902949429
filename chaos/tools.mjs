// @ts-check
/**
 * The chaos run's tool, served by its worker processes: every call appends its start and its end
 * (or abort) to the file named by TOOLQ_CHAOS_LOG, one file per worker process. JavaScript, so
 * the workers run the built CLI with plain node: no TypeScript to compile when one restarts.
 * The lines are history.ts's `call_*` events (type-checked there: tsconfig checks this file).
 */
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

export const CHAOS_TOOL = 'chaos_work';

/** @param {import('./history.ts').HistoryEvent} event */
function record(event) {
  const file = process.env.TOOLQ_CHAOS_LOG;
  if (file) appendFileSync(file, `${JSON.stringify(event)}\n`);
}

export const work = defineTool({
  name: CHAOS_TOOL,
  description: 'Waits `ms`, then returns its key; records its start and end.',
  input: z.object({ key: z.string(), ms: z.number().int().min(0).max(60_000) }),
  timeoutMs: 30_000,
  run: async ({ key, ms }, { signal, attempt }) => {
    const base = { key, tool: CHAOS_TOOL, pid: process.pid };
    record({ type: 'call_start', ...base, attempt, at: Date.now() });
    try {
      await sleep(ms, undefined, { signal });
    } catch (err) {
      record({ type: 'call_abort', ...base, at: Date.now() });
      throw err;
    }
    record({ type: 'call_end', ...base, at: Date.now() });
    return { key, slept_ms: ms };
  },
});

export default [work];
