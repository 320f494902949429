/**
 * Tools for the durable-run tests, served by worker processes: each call appends a line to the
 * file named by TOOLQ_TEST_EXECUTIONS, so a test can count how often a call really ran across
 * processes (start, then end or aborted).
 */
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

function record(line: string): void {
  const file = process.env.TOOLQ_TEST_EXECUTIONS;
  if (file) appendFileSync(file, `${line}\n`);
}

export const slow = defineTool({
  name: 'test_slow',
  description: 'Waits `ms`, then returns its label; logs start, end or aborted to TOOLQ_TEST_EXECUTIONS.',
  input: z.object({ ms: z.number().int().min(0), label: z.string() }),
  timeoutMs: 120_000,
  run: async ({ ms, label }, { signal }) => {
    record(`start ${label}`);
    try {
      await sleep(ms, undefined, { signal });
    } catch (err) {
      record(`aborted ${label}`);
      throw err;
    }
    record(`end ${label}`);
    return { label, slept_ms: ms };
  },
});

export const echo = defineTool({
  name: 'test_echo',
  description: 'Returns its value.',
  input: z.object({ value: z.string() }),
  run: ({ value }) => value,
});

const runTools = [slow, echo];
export default runTools;
